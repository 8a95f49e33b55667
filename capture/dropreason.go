package capture

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// DropReasons names the drop reasons of one kernel, as read from the
// values of its enum skb_drop_reason.
type DropReasons struct {
	names map[uint32]string
}

// LoadDropReasons reads the running kernel's drop reason names from its BTF.
func LoadDropReasons() (*DropReasons, error) {
	spec, err := loadKernelBTF()
	if err != nil {
		return nil, err
	}
	return dropReasonsFromBTF(spec)
}

// dropReasonsFromBTF reads the values of enum skb_drop_reason from spec.
func dropReasonsFromBTF(spec *btf.Spec) (*DropReasons, error) {
	var enum *btf.Enum
	if err := spec.TypeByName("skb_drop_reason", &enum); err != nil {
		return nil, fmt.Errorf("find enum skb_drop_reason: %w", err)
	}
	const prefix = "SKB_DROP_REASON_"
	d := &DropReasons{names: make(map[uint32]string, len(enum.Values))}
	for _, v := range enum.Values {
		if !strings.HasPrefix(v.Name, prefix) {
			continue
		}
		// SKB_DROP_REASON_MAX and the subsystem markers are not reasons,
		// but naming them does no harm; keep the first name per value.
		if _, dup := d.names[uint32(v.Value)]; !dup {
			d.names[uint32(v.Value)] = strings.TrimPrefix(v.Name, prefix)
		}
	}
	return d, nil
}

// Name returns the name of the drop reason code without the
// SKB_DROP_REASON_ prefix (e.g. "NO_SOCKET"), or "REASON_<code>" if the
// kernel does not name it. A nil DropReasons names no code.
func (d *DropReasons) Name(code uint32) string {
	if d != nil {
		if n, ok := d.names[code]; ok {
			return n
		}
	}
	return fmt.Sprintf("REASON_%d", code)
}

// Len returns how many named reasons d holds.
func (d *DropReasons) Len() int {
	if d == nil {
		return 0
	}
	return len(d.names)
}
