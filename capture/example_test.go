package capture_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os/signal"
	"syscall"

	"github.com/pathcap/pathcap/capture"
)

// Record every skb tracepoint until interrupted, printing one line per
// event.
//
// This example is compiled but not run by go test (it has no Output
// comment): it needs root, BTF and a kernel with skb tracepoints, and
// what it prints depends on the traffic of the moment.
func ExampleRecorder_Run() {
	r, err := capture.NewRecorder(capture.Config{Snaplen: 128})
	if errors.Is(err, capture.ErrPermission) {
		log.Fatal("run as root")
	}
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err = r.Run(ctx, func(e *capture.Event) error {
		fmt.Printf("%s %s packet %d netns %d if %d len %d %s\n",
			e.Time.Format("15:04:05.000000"), e.Hook.Name, e.PacketID,
			e.NetNS, e.Ifindex, e.Len, e.DropReasonName())
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	st, err := r.Stats()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d events, %d lost\n", st.Events, st.Lost)
}

// List the hooks that the running kernel offers.
//
// This example is compiled but not run by go test (it has no Output
// comment): the list depends on the running kernel's BTF.
func ExampleListHooks() {
	hooks, err := capture.ListHooks()
	if err != nil {
		log.Fatal(err)
	}
	for _, h := range hooks {
		fmt.Println(h.Kind, h.Name)
	}
}

// The kind of a hook, by name.
func ExampleHookKind_String() {
	for _, k := range []capture.HookKind{capture.HookTracepoint, capture.HookKprobe, capture.HookFentry, capture.HookFexit, capture.HookKretprobe} {
		fmt.Println(k)
	}
	// Output:
	// tracepoint
	// kprobe
	// fentry
	// fexit
	// kretprobe
}
