package natlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// netnsDir is where iproute2 keeps named network namespaces: one nsfs bind
// mount per name. `ip netns list` lists this directory.
const netnsDir = "/run/netns"

// findTool returns the absolute path of a program the lab runs. Root's PATH
// does not always hold the sbin directories (e.g. `su` without `-`), so they
// are searched too.
func findTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (in PATH, /usr/sbin or /sbin)", name)
}

// run runs a program to completion, with stdin as its input when not empty,
// and returns an error that carries the command line and its output.
func run(stdin, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// commandIn returns a command that runs name inside the named namespace
// through `ip netns exec`, which also gives the program a /sys of that
// namespace. ip execs the program, so the process (and cmd.Process.Pid) is
// the program itself.
func commandIn(ctx context.Context, ipPath, ns, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, ipPath, append([]string{"netns", "exec", ns, name}, args...)...)
}

// doIn runs fn on the calling goroutine, locked to its OS thread, with that
// thread switched into the named network namespace, and switches the thread
// back afterwards (also when fn panics or calls runtime.Goexit, as
// t.FailNow does).
//
// Sockets keep the namespace they were created in, so sockets fn opens stay
// in the lab namespace and may be used from any goroutine afterwards. But
// goroutines that fn starts run on other threads, in the process's own
// namespace.
func doIn(ns string, fn func() error) (err error) {
	target, err := os.Open(filepath.Join(netnsDir, ns))
	if err != nil {
		return fmt.Errorf("natlab: namespace %s: %w", ns, err)
	}
	defer target.Close()

	runtime.LockOSThread()
	// The thread's own namespace, to switch back to: the thread's, not the
	// process's, since the caller may itself run inside a Do.
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("natlab: %w", err)
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("natlab: setns %s: %w", ns, err)
	}
	defer func() {
		if rerr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); rerr != nil {
			// The thread is stuck in the lab namespace. Leaving it locked
			// makes the runtime destroy it when this goroutine exits
			// instead of handing it to unrelated goroutines.
			err = errors.Join(err, fmt.Errorf("natlab: restore the thread's namespace after %s: %w", ns, rerr))
			return
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

// writeSysctls sets network sysctls of the named namespace. The files under
// /proc/sys/net belong to the namespace of the thread that opens them, so
// they are written from inside doIn: no process per setting.
func writeSysctls(ns string, kv ...string) error {
	return doIn(ns, func() error {
		for i := 0; i+1 < len(kv); i += 2 {
			p := "/proc/sys/" + strings.ReplaceAll(kv[i], ".", "/")
			if err := os.WriteFile(p, []byte(kv[i+1]), 0); err != nil {
				return fmt.Errorf("sysctl %s=%s in %s: %w", kv[i], kv[i+1], ns, err)
			}
		}
		return nil
	})
}

// nsID identifies a network namespace by the device and inode of its nsfs
// file: what /run/netns/NAME and /proc/PID/ns/net both resolve to.
type nsID struct{ dev, ino uint64 }

func statNS(path string) (nsID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nsID{}, err
	}
	return nsID{dev: st.Dev, ino: st.Ino}, nil
}

// pidsIn returns the processes, other than this one, whose network namespace
// is one of ids: what `ip netns pids` finds, for many namespaces in one scan
// of /proc. A namespace that lost its name (`ip netns del`) lives on while a
// process is inside, so this is how leftovers are found.
func pidsIn(ids map[nsID]string) map[int]string {
	found := map[int]string{}
	if len(ids) == 0 {
		return found
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return found
	}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		id, err := statNS(filepath.Join("/proc", e.Name(), "ns", "net"))
		if err != nil {
			continue // exited, or a zombie (which holds no namespace)
		}
		if ns, ok := ids[id]; ok {
			found[pid] = ns
		}
	}
	return found
}

// processAlive reports whether a process with this id exists.
func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
