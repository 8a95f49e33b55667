package testenv

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// InNamespace runs f on an OS thread that has entered the network
// namespace /run/netns/NAME, and returns its error. Sockets that f creates
// stay in that namespace, so f may hand them to other goroutines (a
// listener, a connection). The thread ends with f: it is never handed
// back to the Go scheduler in the other namespace.
func InNamespace(name string, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		ns, err := os.Open("/run/netns/" + name)
		if err != nil {
			done <- err
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("enter network namespace %s: %w", name, err)
			return
		}
		done <- f()
	}()
	return <-done
}
