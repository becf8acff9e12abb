package main

import (
	"bytes"
	"math/rand/v2"
)

// makeOutput returns size bytes of UTF-8 text in lines of at most 76
// characters, and the bytes a terminal receives when a PTY prints it (every
// "\n" becomes "\r\n"). About one character in seven is multi-byte (2, 3
// and 4-byte sequences), so that a gateway that splits a character between
// two reads and loses it shows up as a mismatch. The text is the same for
// the same seed.
func makeOutput(size int, seed uint64) (file, want []byte) {
	rng := rand.New(rand.NewPCG(seed, seed^0x5bd1e995))
	multi := []string{"é", "ß", "€", "日", "本", "𝄞", "😀"}
	file = make([]byte, 0, size)
	line := make([]byte, 0, 4*76+1)
	for len(file) < size {
		line = line[:0]
		for range rng.IntN(77) {
			if rng.IntN(7) == 0 {
				line = append(line, multi[rng.IntN(len(multi))]...)
			} else {
				line = append(line, byte(0x20+rng.IntN(95)))
			}
		}
		line = append(line, '\n')
		if len(file)+len(line) > size {
			// Fill the end with ASCII so the size is exact.
			line = append(bytes.Repeat([]byte{'.'}, size-len(file)-1), '\n')
		}
		file = append(file, line...)
	}
	want = bytes.ReplaceAll(file, []byte("\n"), []byte("\r\n"))
	return file, want
}
