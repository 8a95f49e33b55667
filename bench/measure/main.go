// Command measure runs a command, discards its output, and prints its wall
// time, CPU time and peak memory (maximum resident set size) as one line of
// key=value pairs, so that benchmark scripts can compare tools run the
// same way.
//
//	measure [-runs N] -- COMMAND [ARGS...]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	runs := flag.Int("runs", 1, "run the command N times and report the fastest run")
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: measure [-runs N] -- COMMAND [ARGS...]")
		os.Exit(2)
	}
	best := time.Duration(-1)
	var bestCPU time.Duration
	var maxRSS int64
	for i := 0; i < *runs; i++ {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stderr = os.Stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "measure: %v: %v\n", args, err)
			os.Exit(1)
		}
		wall := time.Since(start)
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		if best < 0 || wall < best {
			best, bestCPU = wall, cpu
		}
		if ru.Maxrss > maxRSS {
			maxRSS = ru.Maxrss
		}
	}
	fmt.Printf("wall_s=%.3f cpu_s=%.3f maxrss_kib=%d\n", best.Seconds(), bestCPU.Seconds(), maxRSS)
}
