package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockFile, in the data directory, is held locked (flock) by the one `kengen serve` that uses
// the directory, and names its pid. The lock, not the file, is what counts: the operating
// system drops it when the process ends however it ends, so a file left by a killed process
// does not keep the next one out.
const lockFile = "kengen.lock"

// lockDataDir takes the data directory's lock for the life of the process and records the
// pid in it; release drops it. A directory locked by another process is refused with that
// process's pid.
func lockDataDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, lockFile)
	// Not O_TRUNC: the pid in the file is the holder's until this process holds the lock.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking the data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data directory %s is in use by another kengen process (%s); stop it, or give this one another --data-dir", dir, holder(path))
		}
		return nil, fmt.Errorf("locking the data directory %s: %w", dir, err)
	}
	pid := strconv.Itoa(os.Getpid()) + "\n"
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt([]byte(pid), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("recording the pid in %s: %w", path, err)
	}
	return func() { f.Close() }, nil // closing drops the lock; the file stays for the next one
}

// holder describes the process named in the lock file.
func holder(path string) string {
	b, err := os.ReadFile(path)
	if pid := strings.TrimSpace(string(b)); err == nil && pid != "" {
		return "pid " + pid
	}
	return "pid not recorded yet" // it has the lock and is about to write its pid
}
