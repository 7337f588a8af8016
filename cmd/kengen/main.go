// Command kengen is the whole system in one binary: `kengen serve` runs a node, and the
// client verbs (`schema`, `relationship`, `check`) talk to any Authzed v1 endpoint.
//
// Exit codes: 0 success (for `check`, the subject has the permission); 1 an error; 2 `check`
// answered "no permission"; 3 `check` answered "conditional" (caveat context missing).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK           = 0
	exitError        = 1
	exitNoPermission = 2
	exitConditional  = 3
)

// exitCode is an error that carries the process's exit code and prints nothing more.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit code %d", int(e)) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit code. Everything the command reads
// from the environment comes through its arguments, so tests run it in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	root := newRootCmd(&cli{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv})
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	var code exitCode
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &code):
		return int(code)
	default:
		fmt.Fprintf(stderr, "kengen: %s\n", describe(err))
		return exitError
	}
}
