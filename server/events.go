package server

import (
	"errors"
	"math"
	"strconv"

	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// Limits on a resize request; beyond them the request is rejected.
const (
	maxCols = 2000
	maxRows = 1000
)

var errPayload = errors.New("payload must be a JSON object")

// payload returns the event's object argument. Socket.IO appends an
// acknowledgement callback when the client asks for one; it is ignored.
func payload(args []any) (map[string]any, error) {
	if len(args) == 0 {
		return nil, errPayload
	}
	m, ok := args[0].(map[string]any)
	if !ok {
		return nil, errPayload
	}
	return m, nil
}

// decodeStart returns the credentials id of a start-session payload:
// {"credentials_uuid": id} (generation 2) or {"create_session_id": id}
// (generation 1).
func decodeStart(args []any) (string, error) {
	m, err := payload(args)
	if err != nil {
		return "", err
	}
	for _, key := range []string{"credentials_uuid", "create_session_id"} {
		if v, ok := m[key]; ok {
			id, ok := v.(string)
			if !ok || id == "" || len(id) > 64 {
				return "", errors.New(key + " must be a non-empty string")
			}
			return id, nil
		}
	}
	return "", errors.New("missing credentials_uuid")
}

// decodeInput returns the text of an ssh-input payload {"input": string}.
func decodeInput(args []any) (string, error) {
	m, err := payload(args)
	if err != nil {
		return "", err
	}
	s, ok := m["input"].(string)
	if !ok {
		return "", errors.New("input must be a string")
	}
	return s, nil
}

// decodeResize returns the size of a resize payload {"cols": int, "rows":
// int}. Numeric strings are accepted too.
func decodeResize(args []any) (sshbridge.WindowSize, error) {
	m, err := payload(args)
	if err != nil {
		return sshbridge.WindowSize{}, err
	}
	cols, err := dimension(m["cols"], maxCols)
	if err != nil {
		return sshbridge.WindowSize{}, errors.New("cols " + err.Error())
	}
	rows, err := dimension(m["rows"], maxRows)
	if err != nil {
		return sshbridge.WindowSize{}, errors.New("rows " + err.Error())
	}
	return sshbridge.WindowSize{Rows: rows, Cols: cols}, nil
}

func dimension(v any, max int) (int, error) {
	var f float64
	switch v := v.(type) {
	case float64:
		f = v
	case string:
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, errors.New("must be an integer")
		}
		f = float64(n)
	default:
		return 0, errors.New("must be an integer")
	}
	if f != math.Trunc(f) || f < 1 || f > float64(max) {
		return 0, errors.New("must be an integer from 1 to " + strconv.Itoa(max))
	}
	return int(f), nil
}
