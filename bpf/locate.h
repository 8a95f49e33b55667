// locate.h: where an skb's bytes start and what device and namespace it is
// in. Included by common.h only.
#ifndef PATHCAP_LOCATE_H
#define PATHCAP_LOCATE_H

// Where an skb's bytes start and what device it is on: what the filter and
// the record need to know. locate fills in the first part, which every hit
// needs; locate_device the device's index and namespace, which only a
// recorded hit (or a filter on them) needs: they are loads from other
// objects (the device, its namespace), and a rejected hit does not pay them.
struct where {
	unsigned char *head;    // skb->head
	struct net_device *dev; // the device, NULL if none
	__u32 start;            // offset from head of the first byte to copy
	__u32 caplen;           // linear bytes from start, at most snaplen
	__u32 wire_len;         // packet bytes from start, linear or not
	__u32 netns;            // locate_device
	__u32 ifindex;          // locate_device
	__u16 dev_type;
	__u8 header;            // HEADER_*
	__u8 has_dev;
};

// Fills in where the bytes of skb start and the type of its device: dev (a
// device argument of the hook), or NULL to use skb->dev. Helper calls: none
// with BTF_READS; otherwise one bpf_probe_read_kernel for the device type.
static __always_inline void locate(struct sk_buff *skb, struct net_device *dev, struct where *w)
{
	__u32 tail, data, len;
	__u16 mac, network;

	// The device: the hook's own argument where it has one (after a veth
	// transmit, skb->dev already points at the peer), else skb->dev.
	if (!dev)
		dev = skb->dev;
	w->dev = dev;
	w->has_dev = dev != NULL;
	w->dev_type = dev ? KREAD(dev, type) : 0;

	// Choose where the captured bytes start: the MAC header when it is set
	// and is a full Ethernet header, else the network header, else skb->data.
	// Offsets are relative to skb->head.
	w->head = skb->head;
	tail = skb->tail;
	mac = skb->mac_header;
	network = skb->network_header;
	data = (__u32)(skb->data - w->head);
	w->start = data;
	w->header = HEADER_DATA;
	if (network != OFFSET_UNSET && network != 0 && network <= tail) {
		w->start = network;
		w->header = HEADER_NETWORK;
	}
	if (mac != OFFSET_UNSET && mac <= tail &&
	    (w->dev_type == ARPHRD_ETHER || w->dev_type == ARPHRD_LOOPBACK)) {
		// On transmit mac_len is often 0 while the MAC header is in place
		// in front of the network header: accept either measure.
		__u32 maclen = skb->mac_len;

		if (w->header == HEADER_NETWORK && network > mac)
			maclen = network - mac;
		if (maclen >= ETH_HLEN) {
			w->start = mac;
			w->header = HEADER_MAC;
		}
	}

	w->caplen = 0;
	if (w->start < tail)
		w->caplen = tail - w->start;
	if (w->caplen > snaplen)
		w->caplen = snaplen;
	if (w->caplen > MAX_SNAPLEN)
		w->caplen = MAX_SNAPLEN;

	// skb->len counts from skb->data; the filter's "len" counts from start.
	len = skb->len;
	w->wire_len = 0;
	if (len + data > w->start)
		w->wire_len = len + data - w->start;
}

// Fills in the device index and network namespace of w, located for skb.
// Helper calls: none with BTF_READS; otherwise three bpf_probe_read_kernel
// for a device (ifindex, the namespace pointer and its inode: fields of
// different objects, or far apart in struct net_device) or two for a socket
// (namespace pointer, inode).
static __always_inline void locate_device(struct sk_buff *skb, struct where *w)
{
	struct net_device *dev = w->dev;

	if (dev) {
		w->ifindex = KREAD(dev, ifindex);
		w->netns = KREAD2(dev, nd_net.net, ns.inum);
	} else {
		struct sock *sk = skb->sk;

		w->ifindex = skb->skb_iif;
		w->netns = sk ? KREAD2(sk, __sk_common.skc_net.net, ns.inum) : 0;
	}
}

#endif // PATHCAP_LOCATE_H
