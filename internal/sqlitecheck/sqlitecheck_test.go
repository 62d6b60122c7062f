package sqlitecheck

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

func TestDamagedIsOneBoundedLine(t *testing.T) {
	err := Damaged("quick_check:\n  page 3: %s\n", strings.Repeat("x", 2*MaxReasonLen))
	var d *DamagedError
	if !errors.As(err, &d) {
		t.Fatalf("%T is not a DamagedError", err)
	}
	if strings.Contains(d.Reason, "\n") || len(d.Reason) > MaxReasonLen+len("…") || !strings.HasPrefix(d.Reason, "quick_check: page 3: x") {
		t.Fatalf("reason %q", d.Reason)
	}
}

// A file that is not a database is damage, not its surroundings; a
// nil or foreign error is neither.
func TestDamageAndEnvironment(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.db")
	if err := os.WriteFile(p, []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.Exec("SELECT count(*) FROM sqlite_master")
	if !IsDamage(err) || IsEnvironment(err) {
		t.Fatalf("%v: damage %v, environment %v", err, IsDamage(err), IsEnvironment(err))
	}
	for _, e := range []error{nil, errors.New("other")} {
		if IsDamage(e) || IsEnvironment(e) || Code(e) != 0 {
			t.Fatalf("%v classified", e)
		}
	}
}
