package sshdtest

import (
	"os"
	"testing"

	"github.com/alfresco-ssh/alfresco-ssh/internal/testdeps"
)

func TestMain(m *testing.M) {
	os.Exit(testdeps.Main(m).Run())
}
