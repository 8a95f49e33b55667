-- pathcap.lua: a Wireshark post-dissector for pathcap recordings.
--
-- pathcap stores the kernel metadata of every recorded event in a packet
-- comment (docs/FORMAT.md in the pathcap repository), and its analyzer
-- writes "path view" files whose frames carry one summary comment and one
-- comment per hop. This script parses those comments and adds a "pathcap"
-- protocol tree whose fields can be used in display filters, columns and
-- "tshark -T fields":
--
--   pathcap.drop_reason == "NO_SOCKET"
--   pathcap.netns == 4026532841 && pathcap.hook == "tp:kfree_skb"
--   pathcap.outcome == "dropped"
--
-- Comments it handles (every other comment is left alone):
--
--   pathcap/1 hook=tp:kfree_skb dev=veth1 netns=4026532841 ... (raw event)
--   pathcap-path/1 id=29 outcome=dropped hops=7 ...            (view summary)
--   pathcap-hop/1 n=1 dt_ns=0 hook=tp:net_dev_queue ...        (view hop)
--   pathcap-stack/1 id=3 frames=kfree_skb_reason+0x9c;...      (kernel stack)
--
-- Each is "NAME/VERSION" followed by space-separated key=value pairs; a
-- value is either bare or a Go double-quoted string literal. Unknown keys
-- are ignored. A comment that starts like one of these but does not parse
-- gets a "pathcap.malformed" field and an expert-info warning.
--
-- Written for the Wireshark 4.0 Lua API (Lua 5.2). Load it with
--   tshark -X lua_script:pathcap.lua -r recording.pcapng
-- or copy it into the personal Lua plugins folder (see README.md).

local pathcap = Proto("pathcap", "pathcap kernel metadata")

-- A few EtherTypes, for the tree text of pathcap.proto.
local ethertypes = {
    [0x0800] = "IPv4",
    [0x0806] = "ARP",
    [0x86dd] = "IPv6",
    [0x8100] = "802.1Q VLAN",
    [0x88a8] = "802.1ad VLAN",
    [0x8847] = "MPLS unicast",
    [0x8848] = "MPLS multicast",
    [0x0003] = "ETH_P_ALL",
    [0x0004] = "ETH_P_802_2",
}

-- Fields. Names are part of pathcap's interface: filters and scripts
-- depend on them.
local f = {
    version       = ProtoField.uint32("pathcap.version", "Comment version", base.DEC),
    hook          = ProtoField.string("pathcap.hook", "Hook"),
    kind          = ProtoField.string("pathcap.kind", "Hook kind"),
    hook_name     = ProtoField.string("pathcap.hook_name", "Hook name"),
    dev           = ProtoField.string("pathcap.dev", "Device"),
    netns         = ProtoField.uint32("pathcap.netns", "Network namespace", base.DEC),
    ifindex       = ProtoField.uint32("pathcap.ifindex", "Interface index", base.DEC),
    skb           = ProtoField.uint64("pathcap.skb", "sk_buff address", base.HEX),
    len           = ProtoField.uint32("pathcap.len", "skb->len", base.DEC),
    data_len      = ProtoField.uint32("pathcap.data_len", "skb->data_len (not captured)", base.DEC),
    proto         = ProtoField.uint16("pathcap.proto", "skb->protocol", base.HEX, ethertypes),
    pkt_type      = ProtoField.string("pathcap.pkt_type", "Packet type"),
    mark          = ProtoField.uint32("pathcap.mark", "Mark", base.HEX),
    hdr           = ProtoField.string("pathcap.hdr", "Bytes start at (after a synthesized Ethernet header)"),
    bytes         = ProtoField.string("pathcap.bytes", "Packet bytes (same: none here, as at this packet's previous frame with bytes)"),
    ret           = ProtoField.int64("pathcap.ret", "Return value", base.DEC),
    -- Traced tc and XDP programs (record --trace-tc, --trace-xdp).
    prog_type     = ProtoField.string("pathcap.prog_type", "BPF program kind"),
    prog          = ProtoField.string("pathcap.prog", "BPF program"),
    prog_id       = ProtoField.uint32("pathcap.prog_id", "BPF program id", base.DEC),
    prog_tag      = ProtoField.string("pathcap.prog_tag", "BPF program tag"),
    verdict       = ProtoField.string("pathcap.verdict", "BPF program verdict"),
    -- Netfilter (nf_hook_slow, nft_do_chain with a function backend).
    nf_hook       = ProtoField.string("pathcap.nf_hook", "Netfilter hook"),
    nf_pf         = ProtoField.string("pathcap.nf_pf", "Netfilter family"),
    nft_family    = ProtoField.string("pathcap.nft_family", "nftables table family"),
    nft_table     = ProtoField.string("pathcap.nft_table", "nftables table"),
    nft_chain     = ProtoField.string("pathcap.nft_chain", "nftables base chain"),
    nf_verdict    = ProtoField.string("pathcap.nf_verdict", "nftables chain verdict"),
    parent        = ProtoField.uint64("pathcap.parent", "Cloned or copied from tracking id", base.DEC),
    cpu           = ProtoField.uint32("pathcap.cpu", "CPU", base.DEC),
    pid           = ProtoField.uint32("pathcap.pid", "Process id", base.DEC),
    tid           = ProtoField.uint32("pathcap.tid", "Thread id", base.DEC),
    comm          = ProtoField.string("pathcap.comm", "Task name"),
    drop_reason   = ProtoField.string("pathcap.drop_reason", "Drop reason"),
    drop_location = ProtoField.string("pathcap.drop_location", "Drop location"),
    -- Path views.
    id            = ProtoField.uint64("pathcap.id", "Path id", base.DEC),
    outcome       = ProtoField.string("pathcap.outcome", "Outcome"),
    socket        = ProtoField.string("pathcap.socket", "Delivered to socket kind"),
    process       = ProtoField.string("pathcap.process", "Delivered to process"),
    via_clone     = ProtoField.uint64("pathcap.via_clone", "Outcome decided by clone", base.DEC),
    own           = ProtoField.string("pathcap.own", "Fate of the packet's own skb"),
    own_reason    = ProtoField.string("pathcap.own_reason", "Drop reason of the packet's own skb"),
    hops          = ProtoField.uint32("pathcap.hops", "Hops", base.DEC),
    duration_ns   = ProtoField.uint64("pathcap.duration_ns", "Duration (ns)", base.DEC),
    path          = ProtoField.string("pathcap.path", "Path"),
    hop           = ProtoField.none("pathcap.hop", "Hop"),
    hop_n         = ProtoField.uint32("pathcap.hop.n", "Hop number", base.DEC),
    hop_dt_ns     = ProtoField.int64("pathcap.hop.dt_ns", "Time since the first hop (ns)", base.DEC),
    changed       = ProtoField.string("pathcap.changed", "Changed since the previous hop"),
    nat           = ProtoField.string("pathcap.nat", "NAT"),
    -- Kernel stacks (record --stack).
    stack         = ProtoField.none("pathcap.stack", "Kernel stack"),
    stack_id      = ProtoField.uint64("pathcap.stack.id", "Stack number", base.DEC),
    stack_lost    = ProtoField.bool("pathcap.stack.lost", "Stack lost"),
    stack_err     = ProtoField.int32("pathcap.stack.err", "Stack error", base.DEC),
    stack_depth   = ProtoField.uint32("pathcap.stack.depth", "Frames", base.DEC),
    stack_frame   = ProtoField.string("pathcap.stack.frame", "Frame"),
    stack_func    = ProtoField.string("pathcap.stack.func", "Function"),
    derived       = ProtoField.string("pathcap.derived", "Functions derived from the stacks"),
    -- Comments that look like pathcap's but do not parse.
    malformed     = ProtoField.string("pathcap.malformed", "Malformed pathcap comment"),
}

local field_list = {}
for _, field in pairs(f) do
    field_list[#field_list + 1] = field
end
pathcap.fields = field_list

local ef_malformed = ProtoExpert.new("pathcap.expert.malformed", "Malformed pathcap comment",
    expert.group.MALFORMED, expert.severity.WARN)
pathcap.experts = { ef_malformed }

-- The comments of a frame. "frame.comment" is the field's name in
-- Wireshark 3.6 to 4.x; older releases called it "pkt_comment".
local comment_field
do
    local ok, fld = pcall(Field.new, "frame.comment")
    if not ok then
        ok, fld = pcall(Field.new, "pkt_comment")
    end
    if ok then
        comment_field = fld
    end
end

---------------------------------------------------------------------------
-- Value decoding
---------------------------------------------------------------------------

local floor = math.floor

-- printable returns s for use in tree text: control bytes and bytes that
-- are not part of valid UTF-8 are shown as escapes (\n, \t, \xHH).
local function printable(s)
    if not s:find("[%c\128-\255]") then
        return s
    end
    local out = {}
    local i, n = 1, #s
    while i <= n do
        local b = s:byte(i)
        local len = 0
        if b >= 0xc2 and b <= 0xdf then
            len = 2
        elseif b >= 0xe0 and b <= 0xef then
            len = 3
        elseif b >= 0xf0 and b <= 0xf4 then
            len = 4
        end
        local seq = len > 0 and s:sub(i, i + len - 1)
        if seq and #seq == len and seq:match("^.[\128-\191]*$") then
            -- Reject overlong forms, surrogates and code points above
            -- U+10FFFF, which the lead byte ranges alone do not exclude.
            local b2 = seq:byte(2)
            if (b == 0xe0 and b2 < 0xa0) or (b == 0xed and b2 > 0x9f)
                or (b == 0xf0 and b2 < 0x90) or (b == 0xf4 and b2 > 0x8f) then
                seq = nil
            end
        else
            seq = nil
        end
        if seq then
            out[#out + 1] = seq
            i = i + len
        else
            local c = s:sub(i, i)
            if c == "\n" then
                out[#out + 1] = "\\n"
            elseif c == "\t" then
                out[#out + 1] = "\\t"
            elseif c == "\r" then
                out[#out + 1] = "\\r"
            elseif b < 0x20 or b >= 0x7f then
                out[#out + 1] = string.format("\\x%02x", b)
            else
                out[#out + 1] = c
            end
            i = i + 1
        end
    end
    return table.concat(out)
end

-- utf8_char returns the UTF-8 encoding of code point cp.
local function utf8_char(cp)
    if cp < 0x80 then
        return string.char(cp)
    elseif cp < 0x800 then
        return string.char(0xc0 + floor(cp / 0x40), 0x80 + cp % 0x40)
    elseif cp < 0x10000 then
        return string.char(0xe0 + floor(cp / 0x1000), 0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
    end
    return string.char(0xf0 + floor(cp / 0x40000), 0x80 + floor(cp / 0x1000) % 0x40,
        0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

-- Single-character escapes of a Go string literal.
local simple_escapes = {
    a = "\a", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", v = "\v",
    ["\\"] = "\\", ['"'] = '"',
}

-- unquote decodes the Go double-quoted string literal that starts at index
-- i of s (s:sub(i, i) is '"'), as strconv.Unquote does. It returns the
-- decoded bytes and the index just past the closing quote, or nil and an
-- error message.
local function unquote(s, i)
    local out = {}
    local j = i + 1
    local n = #s
    while true do
        if j > n then
            return nil, "unterminated quoted value"
        end
        local c = s:sub(j, j)
        if c == '"' then
            return table.concat(out), j + 1
        elseif c == "\n" then
            return nil, "newline in quoted value"
        elseif c ~= "\\" then
            -- A run of bytes that need no decoding.
            local k = s:find('[\\"\n]', j) or n + 1
            out[#out + 1] = s:sub(j, k - 1)
            j = k
        else
            local e = s:sub(j + 1, j + 1)
            if simple_escapes[e] then
                out[#out + 1] = simple_escapes[e]
                j = j + 2
            elseif e == "x" then
                -- \xHH: one byte.
                local h = s:match("^%x%x", j + 2)
                if not h then
                    return nil, "bad \\x escape in quoted value"
                end
                out[#out + 1] = string.char(tonumber(h, 16))
                j = j + 4
            elseif e == "u" or e == "U" then
                -- \uHHHH and \UHHHHHHHH: a Unicode code point, as UTF-8.
                local digits = e == "u" and 4 or 8
                local h = s:match("^" .. string.rep("%x", digits), j + 2)
                local cp = h and tonumber(h, 16)
                if not cp or cp > 0x10ffff or (cp >= 0xd800 and cp <= 0xdfff) then
                    return nil, "bad \\" .. e .. " escape in quoted value"
                end
                out[#out + 1] = utf8_char(cp)
                j = j + 2 + digits
            elseif e:match("^[0-7]$") then
                -- \NNN: one byte in octal.
                local o = s:match("^[0-7][0-7][0-7]", j + 1)
                local v = o and tonumber(o, 8)
                if not v or v > 255 then
                    return nil, "bad octal escape in quoted value"
                end
                out[#out + 1] = string.char(v)
                j = j + 4
            else
                return nil, "unknown escape \\" .. e .. " in quoted value"
            end
        end
    end
end

-- tokenize splits comment s, which starts with prefix ("pathcap/",
-- "pathcap-path/" or "pathcap-hop/"), into its version and a table of
-- key -> decoded value (the last one wins if a key repeats). On error it
-- returns nil and a message naming the 0-based byte offset.
local function tokenize(s, prefix, newest)
    local pos = #prefix + 1
    local function fail(msg)
        return nil, string.format("byte %d: %s", pos - 1, msg)
    end
    local digits = s:match("^%d+", pos)
    if not digits then
        return fail("no version number")
    end
    local v = tonumber(digits)
    if v < 1 or v > newest or #digits > 1 then
        local knows = "1"
        if newest > 1 then
            knows = "1 to " .. newest
        end
        return fail(string.format("unsupported version %s (this dissector knows %s)", digits, knows))
    end
    pos = pos + #digits
    local values = {}
    while pos <= #s do
        if s:sub(pos, pos) ~= " " then
            return fail("expected a space before the next key")
        end
        pos = pos + 1
        local eq = s:find("=", pos, true)
        if not eq or eq == pos then
            return fail("expected key=value")
        end
        local key = s:sub(pos, eq - 1)
        if not key:match("^[a-z][a-z0-9_]*$") then
            return fail(string.format('invalid key "%s"', printable(key)))
        end
        pos = eq + 1
        local value
        if s:sub(pos, pos) == '"' then
            local v, next_or_err = unquote(s, pos)
            if not v then
                return fail(next_or_err)
            end
            value, pos = v, next_or_err
        else
            local sp = s:find(" ", pos, true) or #s + 1
            value = s:sub(pos, sp - 1)
            if value == "" then
                return fail("empty value for " .. key)
            end
            local bad = value:find('[%c"]')
            if bad then
                return fail(string.format("bad byte 0x%02x in value of %s", value:byte(bad), key))
            end
            pos = sp
        end
        values[key] = value
    end
    return tonumber(digits), values
end

-- Converters turn a value as written into the value for its field (a
-- number, UInt64, Int64 or string), or return nil and an error message.

local U64_MAX = "18446744073709551615"
local I64_MAX = "9223372036854775807"
local I64_MIN_ABS = "9223372036854775808"

-- decimal_fits reports whether the decimal digit string d (no sign) is at
-- most the decimal digit string max.
local function decimal_fits(d, max)
    d = d:gsub("^0+(%d)", "%1")
    return #d < #max or (#d == #max and d <= max)
end

local function dec32(v)
    if not v:match("^%d+$") or #v > 20 or not decimal_fits(v, "4294967295") then
        return nil, "not a 32-bit decimal number"
    end
    return tonumber(v)
end

-- u64_from_decimal builds a UInt64 from a decimal digit string that fits.
local function u64_from_decimal(d)
    d = d:gsub("^0+(%d)", "%1")
    if #d <= 10 then
        return UInt64.new(tonumber(d))
    end
    local hi, lo = tonumber(d:sub(1, #d - 10)), tonumber(d:sub(#d - 9))
    return UInt64.new(hi) * 10000000000 + lo
end

local function dec64(v)
    if not v:match("^%d+$") or #v > 20 or not decimal_fits(v, U64_MAX) then
        return nil, "not a 64-bit unsigned decimal number"
    end
    return u64_from_decimal(v)
end

local function int64(v)
    local sign, d = v:match("^([+-]?)(%d+)$")
    if not d or not decimal_fits(d, sign == "-" and I64_MIN_ABS or I64_MAX) then
        return nil, "not a 64-bit signed decimal number"
    end
    local n = Int64.fromhex(u64_from_decimal(d):tohex())
    if sign == "-" then
        n = -n
    end
    return n
end

-- hex returns a converter for "0x" followed by 1 to 16 hex digits whose
-- value fits the given number of bits.
local function hex(bits)
    return function(v)
        local h = v:match("^0x(%x+)$")
        if not h or #h > 16 then
            return nil, "not a 0x-prefixed hex number"
        end
        if bits == 64 then
            return UInt64.fromhex(h)
        end
        local n = tonumber(h, 16)
        if n >= 2 ^ bits then
            return nil, string.format("does not fit %d bits", bits)
        end
        return n
    end
end

local function str(v)
    return v
end

local pkt_type_names = {
    host = true, broadcast = true, multicast = true, otherhost = true,
    outgoing = true, loopback = true, user = true, kernel = true,
}

local function pkt_type(v)
    if pkt_type_names[v] or (v:match("^%d+$") and decimal_fits(v, "255")) then
        return v
    end
    return nil, "not a packet type"
end

local function hdr(v)
    if v == "mac" or v == "net" or v == "data" then
        return v
    end
    return nil, "not mac, net or data"
end

local function hook(v)
    if not v:match("^[^:]+:.") then
        return nil, "not KIND:NAME"
    end
    return v
end

-- stack_ref: the stack= key, a stack number (from 1) or "lost".
local function stack_ref(v)
    if v == "lost" then
        return v
    end
    if not v:match("^%d+$") or not decimal_fits(v, U64_MAX) or v:match("^0+$") then
        return nil, "not a stack number or lost"
    end
    return u64_from_decimal(v)
end

local function int32(v)
    local n = v:match("^[+-]?%d+$") and tonumber(v)
    if not n or n < -2147483648 or n > 2147483647 or #v > 12 then
        return nil, "not a 32-bit signed decimal number"
    end
    return n
end

local function stack_id(v)
    local n, err = dec64(v)
    if not n then
        return nil, err
    end
    if v:match("^0+$") then
        return nil, "stack numbers start at 1"
    end
    return n
end

-- frame_list splits frames= and funcs= values at ";" into a list.
local function frame_list(v)
    local list = {}
    for frame in (v .. ";"):gmatch("([^;]*);") do
        if frame == "" then
            return nil, "empty frame"
        end
        list[#list + 1] = frame
    end
    return list
end

-- frame_function returns a frame's function name: what comes before its
-- offset and module.
local function frame_function(frame)
    return frame:match("^[^+[]*")
end

-- Schemas: the keys each kind of comment may hold, in tree order, with
-- their converter and field. Keys not listed are ignored.

local hook_keys = {
    { "hook", hook, f.hook },
    { "dev", str, f.dev },
    { "netns", dec32, f.netns },
    { "ifindex", dec32, f.ifindex },
}

local event_schema = {
    hook_keys[1], hook_keys[2], hook_keys[3], hook_keys[4],
    { "skb", hex(64), f.skb },
    { "len", dec32, f.len },
    { "data_len", dec32, f.data_len },
    { "proto", hex(16), f.proto },
    { "pkt_type", pkt_type, f.pkt_type },
    { "mark", hex(32), f.mark },
    { "hdr", hdr, f.hdr },
    { "bytes", str, f.bytes },
    { "prog_type", str, f.prog_type },
    { "prog", str, f.prog },
    { "prog_id", dec32, f.prog_id },
    { "prog_tag", str, f.prog_tag },
    { "nf_hook", str, f.nf_hook },
    { "nf_pf", str, f.nf_pf },
    { "nft_family", str, f.nft_family },
    { "nft_table", str, f.nft_table },
    { "nft_chain", str, f.nft_chain },
    { "nf_verdict", str, f.nf_verdict },
    { "ret", int64, f.ret },
    { "parent", dec64, f.parent },
    { "cpu", dec32, f.cpu },
    { "pid", dec32, f.pid },
    { "tid", dec32, f.tid },
    { "comm", str, f.comm },
    { "reason", str, f.drop_reason },
    { "loc", str, f.drop_location },
    { "stack", stack_ref, f.stack_id },
    { "stack_err", int32, f.stack_err },
}

local path_schema = {
    { "id", dec64, f.id },
    { "outcome", str, f.outcome },
    { "reason", str, f.drop_reason },
    { "loc", str, f.drop_location },
    { "socket", str, f.socket },
    { "process", str, f.process },
    { "program", str, f.prog },
    { "program_type", str, f.prog_type },
    { "verdict", str, f.verdict },
    { "nf_hook", str, f.nf_hook },
    { "nft_chain", str, f.nft_chain },
    { "via_clone", dec64, f.via_clone },
    { "own", str, f.own },
    { "own_reason", str, f.own_reason },
    { "hops", dec32, f.hops },
    { "duration_ns", dec64, f.duration_ns },
    { "path", str, f.path },
}

local hop_schema = {
    { "n", dec32, f.hop_n },
    { "dt_ns", int64, f.hop_dt_ns },
    hook_keys[1], hook_keys[2], hook_keys[3], hook_keys[4],
    { "len", dec32, f.len },
    { "comm", str, f.comm },
    { "reason", str, f.drop_reason },
    { "loc", str, f.drop_location },
    { "program", str, f.prog },
    { "verdict", str, f.verdict },
    { "nf_hook", str, f.nf_hook },
    { "nft_chain", str, f.nft_chain },
    { "changed", str, f.changed },
    { "nat", str, f.nat },
    { "stack", stack_ref, f.stack_id },
    { "stack_err", int32, f.stack_err },
    { "frames", frame_list },
    { "derived", str, f.derived },
}

local stack_schema = {
    { "id", stack_id, f.stack_id },
    { "frames", frame_list },
    { "funcs", frame_list },
}

-- The comment kinds, by prefix, with the keys each must have.
-- newest is the newest version of each that this dissector reads.
local kinds = {
    { prefix = "pathcap/", schema = event_schema, required = { "hook" }, newest = 2 },
    { prefix = "pathcap-path/", schema = path_schema, required = {}, newest = 1 },
    { prefix = "pathcap-hop/", schema = hop_schema, required = { "hook" }, newest = 1 },
    { prefix = "pathcap-stack/", schema = stack_schema, required = { "id" }, newest = 1 },
}

-- The frame's interface: version 2 of the event comment leaves its device,
-- namespace and ifindex to it (docs/FORMAT.md).
local ifname_field = Field.new("frame.interface_name")
local ifdesc_field = Field.new("frame.interface_description")

-- add_place fills raw's dev, netns and ifindex from the frame's interface,
-- as a version 2 event comment asks, and its tid from its pid when it has
-- none. The interface's description reads "netns INODE (NAME) ifindex N",
-- "netns INODE (NAME) no device" or "no device, no netns"; its name is the
-- device's, but "ifN" for one whose name was not known and "nodev".
local function add_place(raw)
    if raw.tid == nil then
        raw.tid = raw.pid
    end
    local name_fi, desc_fi = ifname_field(), ifdesc_field()
    local name = name_fi and name_fi.value
    local desc = desc_fi and desc_fi.value
    if type(desc) ~= "string" then
        return
    end
    local netns = desc:match("^netns (%d+)")
    local ifindex = desc:match(" ifindex (%d+)$")
    if desc == "no device, no netns" then
        netns = "0"
    end
    raw.netns = netns
    raw.ifindex = ifindex or (netns and "0")
    if raw.dev == nil and ifindex and type(name) == "string" and name ~= "if" .. ifindex then
        raw.dev = name
    end
end

-- decode parses comment s of the given kind. It returns the comment's
-- version, its raw values by key and its converted values by key, or nil
-- and an error message.
local function decode(s, kind)
    local version, raw = tokenize(s, kind.prefix, kind.newest)
    if not version then
        return nil, raw
    end
    if kind.schema == event_schema then
        if version >= 2 then
            add_place(raw)
        elseif raw.tid == nil then
            raw.tid = raw.pid
        end
    end
    local conv = {}
    for _, entry in ipairs(kind.schema) do
        local key, convert = entry[1], entry[2]
        local v = raw[key]
        if v ~= nil then
            local c, err = convert(v)
            if c == nil then
                return nil, string.format('bad value "%s" for %s: %s', printable(v), key, err)
            end
            conv[key] = c
        end
    end
    for _, key in ipairs(kind.required) do
        if raw[key] == nil then
            return nil, "no " .. key .. " key"
        end
    end
    if kind.schema == stack_schema and raw.frames == nil and raw.funcs == nil then
        return nil, "no frames or funcs key"
    end
    return version, raw, conv
end

---------------------------------------------------------------------------
-- Tree building
---------------------------------------------------------------------------

-- add_frames adds a list of frames, and their functions, to tree.
local function add_frames(tree, frames)
    tree:add(f.stack_depth, #frames)
    for _, frame in ipairs(frames) do
        tree:add(f.stack_frame, frame)
    end
    for _, frame in ipairs(frames) do
        tree:add(f.stack_func, frame_function(frame))
    end
end

-- add_fields adds the fields of schema present in conv to tree. The hook
-- is followed by its kind and name; stack=lost is pathcap.stack.lost, a
-- view hop's frames are a pathcap.stack subtree.
local function add_fields(tree, schema, raw, conv)
    for _, entry in ipairs(schema) do
        local key, field = entry[1], entry[3]
        if conv[key] ~= nil then
            if key == "stack" and conv.stack == "lost" then
                tree:add(f.stack_lost, true)
            elseif key == "frames" then
                local item = tree:add(f.stack)
                item:set_text(string.format("Kernel stack (%d frames)", #conv.frames))
                add_frames(item, conv.frames)
            elseif field then
                tree:add(field, conv[key])
            end
            if key == "hook" then
                local kind, name = raw.hook:match("^([^:]+):(.+)$")
                tree:add(f.kind, kind)
                tree:add(f.hook_name, name)
            end
        end
    end
end

-- where describes a hook hit: "tp:kfree_skb on veth1 (netns 4026532841)".
local function where(raw)
    local text = raw.hook
    if raw.dev then
        text = text .. " on " .. raw.dev
    end
    if raw.netns then
        text = text .. " (netns " .. raw.netns .. ")"
    end
    return text
end

-- drop_text describes a drop: " dropped: NO_SOCKET at func+0x4bc".
local function drop_text(raw)
    local text = ""
    if raw.reason then
        text = text .. " dropped: " .. raw.reason
    end
    if raw.loc then
        text = text .. " at " .. raw.loc
    end
    return text
end

-- stack_text describes the stack= key: ", stack 5" or ", stack lost".
local function stack_text(raw)
    if raw.stack == "lost" then
        return ", stack lost"
    elseif raw.stack then
        return ", stack " .. raw.stack
    end
    return ""
end

local function add_event(tree, version, raw, conv)
    local item = tree:add(pathcap)
    local text = "pathcap: " .. where(raw) .. drop_text(raw)
    if raw.ret then
        text = text .. " returned " .. raw.ret
    end
    text = text .. stack_text(raw)
    item:set_text(printable(text))
    item:add(f.version, version)
    add_fields(item, event_schema, raw, conv)
    return item
end

local function add_path(tree, version, raw, conv)
    local item = tree:add(pathcap)
    local text = "pathcap path"
    if raw.id then
        text = text .. " " .. raw.id
    end
    if raw.outcome then
        text = text .. ": " .. raw.outcome
        if raw.outcome == "dropped" and raw.reason then
            text = text .. " (" .. raw.reason .. ")"
        end
        if raw.via_clone then
            text = text .. " via clone " .. raw.via_clone
        end
        if raw.nft_chain then
            text = text .. " by nftables " .. raw.nft_chain
        elseif raw.nf_hook then
            text = text .. " in netfilter hook " .. raw.nf_hook
        end
        if raw.socket then
            text = text .. " to " .. raw.socket .. " socket"
        end
        if raw.process then
            text = text .. " of " .. raw.process
        end
    end
    if raw.loc then
        text = text .. " at " .. raw.loc
    end
    if raw.hops then
        text = text .. ", " .. raw.hops .. " hops"
    end
    if raw.duration_ns then
        text = text .. " in " .. raw.duration_ns .. " ns"
    end
    item:set_text(printable(text))
    item:add(f.version, version)
    add_fields(item, path_schema, raw, conv)
    return item
end

local function add_hop(tree, raw, conv)
    local item = tree:add(f.hop)
    local text = "Hop"
    if raw.n then
        text = text .. " " .. raw.n
    end
    if raw.dt_ns then
        local sign = raw.dt_ns:match("^[+-]") and "" or "+"
        text = text .. " (" .. sign .. raw.dt_ns .. " ns)"
    end
    text = text .. ": " .. where(raw) .. drop_text(raw)
    if raw.changed then
        text = text .. ", changed " .. raw.changed
    end
    text = text .. stack_text(raw)
    item:set_text(printable(text))
    add_fields(item, hop_schema, raw, conv)
end

-- Stack definitions seen in this file, by number: the full frames and
-- their functions joined by ";". The short form of a stack gets its
-- offsets from here when its functions agree. Emptied for each file.
local stack_defs = {}
local stack_def_count = 0

function pathcap.init()
    stack_defs = {}
    stack_def_count = 0
end

-- functions_of returns the functions of frames joined by ";", modules
-- kept: what the short form of those frames says.
local function functions_of(frames)
    local out = {}
    for i, frame in ipairs(frames) do
        out[i] = frame_function(frame) .. (frame:match("%[.*%]$") or "")
    end
    return table.concat(out, ";")
end

local function add_stack(tree, pinfo, raw, conv)
    local item = tree:add(f.stack)
    local id = raw.id
    local frames, text
    if conv.frames then
        frames = conv.frames
        text = "definition"
        if not stack_defs[id] then
            if stack_def_count >= 65536 then
                stack_defs, stack_def_count = {}, 0
            end
            stack_def_count = stack_def_count + 1
            stack_defs[id] = { frames = frames, funcs = functions_of(frames), frame = pinfo.number }
        end
    else
        local def = stack_defs[id]
        if def and def.funcs == raw.funcs then
            frames = def.frames
            text = "offsets from frame " .. def.frame
        else
            frames = conv.funcs
            text = "functions only"
        end
    end
    item:set_text(printable(string.format("Kernel stack %s (%d frames, %s)", id, #frames, text)))
    item:add(f.stack_id, conv.id)
    add_frames(item, frames)
end

local function add_malformed(tree, comment, msg)
    local item = tree:add(pathcap)
    item:set_text("pathcap: malformed comment: " .. msg)
    local m = item:add(f.malformed, msg)
    m:add_proto_expert_info(ef_malformed, "Malformed pathcap comment: " .. msg)
    item:add("Comment: " .. printable(comment))
end

-- kind_of returns the comment kind that comment s is, or nil for comments
-- that are not pathcap's.
local function kind_of(s)
    for _, kind in ipairs(kinds) do
        if s:sub(1, #kind.prefix) == kind.prefix then
            return kind
        end
    end
    return nil
end

---------------------------------------------------------------------------
-- The post-dissector
---------------------------------------------------------------------------

-- add_comment adds the tree for comment s of the given kind. state.view
-- is the item of the frame's most recent path summary: hops go under it,
-- or under a container of their own if no summary came before them.
local function add_comment(tree, pinfo, s, kind, state)
    local version, raw, conv = decode(s, kind)
    if not version then
        add_malformed(tree, s, raw)
    elseif kind.schema == event_schema then
        state.event = add_event(tree, version, raw, conv)
    elseif kind.schema == stack_schema then
        add_stack(state.event or tree, pinfo, raw, conv)
    elseif kind.schema == path_schema then
        state.view = add_path(tree, version, raw, conv)
    else
        if not state.view then
            state.view = tree:add(pathcap)
            state.view:set_text("pathcap path (no summary comment)")
        end
        add_hop(state.view, raw, conv)
    end
end

-- comment_values returns the frame's comments. Wireshark 4.4 (not 4.0)
-- show a comment of several lines as an item holding its first line with
-- one child item per line, all named frame.comment, next to the item
-- holding the whole comment: such lines are left out, so that each comment
-- is read once, whole.
local function comment_values()
    local values, lines = {}, {}
    for _, fi in ipairs({ comment_field() }) do
        local s = fi.value
        if type(s) == "string" then
            values[#values + 1] = s
            if s:find("\n", 1, true) then
                for line in (s .. "\n"):gmatch("([^\n]*)\n") do
                    lines[line] = true
                end
            end
        end
    end
    local out = {}
    for _, s in ipairs(values) do
        if s:find("\n", 1, true) or not lines[s] then
            out[#out + 1] = s
        end
    end
    return out
end

function pathcap.dissector(tvb, pinfo, tree)
    if not comment_field then
        return
    end
    local state = {}
    for _, s in ipairs(comment_values()) do
        local kind = kind_of(s)
        if kind then
            -- A Lua error on one comment (which would be a bug here) is
            -- reported like a malformed comment, so that it cannot stop
            -- the dissection of the others.
            local ok, err = pcall(add_comment, tree, pinfo, s, kind, state)
            if not ok then
                add_malformed(tree, s, "internal error: " .. tostring(err))
            end
        end
    end
end

register_postdissector(pathcap)
