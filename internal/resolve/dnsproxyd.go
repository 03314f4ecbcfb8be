package resolve

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The client side of Android's DNS proxy: netd (Android 8 and 9) and the DnsResolver
// module (Android 10 and later) serve every app's getaddrinfo() on the unix stream socket
// /dev/socket/dnsproxyd. A static Go binary has no bionic to talk to it, so amosd speaks
// the protocol itself. Confirmed against the AOSP sources:
//
//   - bionic libc/dns/net/getaddrinfo.c, android_getaddrinfo_proxy (the client);
//   - system/netd server/DnsProxyListener.cpp (Android 8, 9) and
//     packages/modules/DnsResolver DnsProxyListener.cpp (Android 10 to 15), GetAddrInfoCmd,
//     GetAddrInfoHandler::run, sendaddrinfo (the server);
//   - system/core libsysutils FrameworkListener.cpp and SocketClient.cpp (framing);
//   - bionic resolv_netid.h / DnsResolver resolv_private.h (NETID_UNSET is 0u).
//
// Request: one command, NUL-terminated, sent in a single write, because FrameworkListener
// takes a command from one read() of at most 1024 bytes whose last byte must be NUL:
//
//	getaddrinfo <host> <service or ^> <ai_flags> <ai_family> <ai_socktype> <ai_protocol> <netid>
//
// Arguments are split on spaces; '"' and '\' are quoting characters there, and bionic
// refuses to send hosts containing any of ` \n\r\t^'"`: such hosts are refused here too.
//
// Why getaddrinfo: it is the command bionic's own getaddrinfo() sends, with these eight
// arguments, on every Android release from 5 to the current one, so netd must keep serving
// it for every app; it returns IPv4 and IPv6 in one answer, sorted by netd (RFC 6724),
// after /system/etc/hosts, search domains, Private DNS and DNS64 synthesis. gethostbyname
// answers one address family per query, and resnsend (a base64 DNS packet) only exists
// from Android 10 and would leave all of that to us.
//
// Hints: AI_ADDRCONFIG, AF_UNSPEC, SOCK_STREAM, protocol 0 — what libcore's
// InetAddress.getAllByName sends: one entry per address, only of families the device has
// connectivity for. netid: 0 (NETID_UNSET), as bionic sends for a process that chose no
// network: netd resolves on the default network of the caller's uid (SO_PEERCRED). The
// top bit (NETID_USE_LOCAL_NAMESERVERS, bypass Private DNS) is for privileged callers and
// is not used.
//
// Answer on success: "222\0" (ResponseCode::DnsProxyQueryResult, SocketClient::sendCode),
// then for each addrinfo a big-endian int32 1 followed by big-endian int32 ai_flags,
// ai_family, ai_socktype, ai_protocol and ai_addrlen, the ai_addrlen bytes of the sockaddr
// as it is in memory, and a big-endian int32 length of ai_canonname counting its NUL (0 for
// none) followed by those bytes; the list ends with a big-endian int32 0. The sockaddr is
// the kernel's: sa_family in host byte order (little-endian on every Android ABI), port
// and address in network order; sockaddr_in is 16 bytes, sockaddr_in6 28 (family, port,
// flowinfo, address, scope id in host order).
//
// Answer when the lookup fails: "401\0" (DnsProxyOperationFailed, SocketClient::sendBinaryMsg),
// a big-endian int32 length (4) and the EAI_* code as an int32 in host byte order
// (sendBinaryMsg copies it unconverted). A command netd refuses gets a text answer,
// "500 Command not recognized\0" or "501 <why>\0" (SocketClient::sendMsg): three digits
// and a space instead of a NUL.
//
// netd keeps the connection open for further commands after an answer: the answer ends
// at its terminator, never at EOF. The socket is 0660 root:inet: the amosd service needs
// group inet (AID_INET, 3003) and an SELinux domain allowed to connect to it (net_domain).

const (
	DnsproxydPath  = "/dev/socket/dnsproxyd"
	ResolvConfPath = "/etc/resolv.conf"

	dnsproxydQueryResult     = 222 // ResponseCode::DnsProxyQueryResult
	dnsproxydOperationFailed = 401 // ResponseCode::DnsProxyOperationFailed

	aiAddrconfig = 0x400 // AI_ADDRCONFIG (bionic netdb.h)
	afUnspec     = 0
	afInet       = 2  // AF_INET
	afInet6      = 10 // AF_INET6 (Linux)
	sockStream   = 1  // SOCK_STREAM
	netidUnset   = 0  // NETID_UNSET

	sizeofSockaddrIn  = 16
	sizeofSockaddrIn6 = 28

	// Bounds of an answer: anything beyond them is refused as broken, not read.
	maxDnsproxydEntries = 64
	maxCanonName        = 256 // a DNS name is at most 253 characters, plus the NUL
	maxDnsproxydText    = 256 // of a text answer's message
	maxDnsproxydHost    = 254 // 253 characters and a final dot
)

// dnsproxydCommand is the request for host, NUL included.
func dnsproxydCommand(host string) string {
	return "getaddrinfo " + host + " ^ " + strconv.Itoa(aiAddrconfig) + " " + strconv.Itoa(afUnspec) + " " +
		strconv.Itoa(sockStream) + " 0 " + strconv.Itoa(netidUnset) + "\x00"
}

// eaiNames names bionic's EAI_* codes (netdb.h) and netd's own timeout code.
var eaiNames = map[int32]string{
	1: "EAI_ADDRFAMILY", 2: "EAI_AGAIN", 3: "EAI_BADFLAGS", 4: "EAI_FAIL", 5: "EAI_FAMILY",
	6: "EAI_MEMORY", 7: "EAI_NODATA", 8: "EAI_NONAME", 9: "EAI_SERVICE", 10: "EAI_SOCKTYPE",
	11: "EAI_SYSTEM", 12: "EAI_BADHINTS", 13: "EAI_PROTOCOL", 14: "EAI_OVERFLOW",
	255: "NETD_RESOLV_TIMEOUT",
}

const (
	eaiNodata = 7 // what netd answers for NXDOMAIN and for a name without address
	eaiNoname = 8
)

// dnsproxydLookup asks the dnsproxyd socket at path for the addresses of host, in netd's
// order, without duplicates. It gives up when ctx is done. Errors name path and host and
// match ErrUnreachable (no connection), ErrNameNotFound, or ErrFailed
// (together with ctx's error when ctx ended it).
func dnsproxydLookup(ctx context.Context, path, host string) ([]netip.Addr, error) {
	what := "transport: dnsproxyd " + path + ": looking up " + strconv.Quote(host)
	if err := checkDnsproxydHost(host); err != nil {
		return nil, classify(nil, []error{ErrNameNotFound}, "%s: %v", what, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, classify(err, []error{ErrUnreachable, ctxErr}, "%s: cannot connect to the socket", what)
		}
		hint := ""
		if errors.Is(err, fs.ErrPermission) {
			hint = " (amosd needs group inet and SELinux permission to connect to it)"
		}
		return nil, classify(err, []error{ErrUnreachable}, "%s: the socket exists but cannot be connected to%s", what, hint)
	}
	defer conn.Close()
	// Unblock the write and the reads when ctx ends; ctx.Err() is set by then.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	fail := func(err error) error {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return classify(err, []error{ErrFailed, ctxErr}, "%s", what)
		}
		return classify(err, nil, "%s", what) // err carries its sentinel
	}
	// One write: FrameworkListener takes the command from a single read.
	if _, err := io.WriteString(conn, dnsproxydCommand(host)); err != nil {
		return nil, fail(classify(err, []error{ErrFailed}, "sending the query"))
	}
	addrs, err := readDnsproxydAnswer(bufio.NewReaderSize(conn, 512))
	if err != nil {
		return nil, fail(err)
	}
	return addrs, nil
}

// checkDnsproxydHost refuses what cannot travel in a FrameworkListener command.
func checkDnsproxydHost(host string) error {
	if host == "" || len(host) > maxDnsproxydHost {
		return errors.New("not a host name (empty or longer than 254 bytes)")
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`^'"\`, c) >= 0 {
			return errors.New("not a host name the proxy can take (spaces, quotes, ^, \\ or non-ASCII)")
		}
	}
	return nil
}

// readDnsproxydAnswer decodes netd's answer to a getaddrinfo command. It reads exactly the
// answer and nothing after it. A lookup that netd answers with EAI_NODATA or EAI_NONAME,
// or with no entry, matches ErrNameNotFound; everything else that is not a valid answer
// matches ErrFailed.
func readDnsproxydAnswer(r *bufio.Reader) ([]netip.Addr, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, answerErr(err, "reading the result code")
	}
	code, ok := parseCode(head[:3])
	switch {
	case !ok:
		return nil, answerErr(nil, "result code %q is not three digits", head[:])
	case head[3] == ' ': // a text answer: the command was refused
		msg, err := readText(r)
		if err != nil {
			return nil, answerErr(err, "reading the message of answer %d", code)
		}
		return nil, answerErr(nil, "the proxy refused the query: %d %s", code, msg)
	case head[3] != 0:
		return nil, answerErr(nil, "result code %q is not NUL-terminated", head[:])
	case code == dnsproxydOperationFailed:
		return nil, readFailure(r)
	case code != dnsproxydQueryResult:
		return nil, answerErr(nil, "result code %d, want %d or %d", code, dnsproxydQueryResult, dnsproxydOperationFailed)
	}

	var addrs []netip.Addr
	for i := 0; ; i++ {
		more, err := readBE32(r)
		if err != nil {
			return nil, answerErr(err, "cut short after %d entries", i)
		}
		if more == 0 {
			break
		}
		if more != 1 {
			return nil, answerErr(nil, "entry %d: continuation %d, want 0 or 1", i, more)
		}
		if i == maxDnsproxydEntries {
			return nil, answerErr(nil, "more than %d entries", maxDnsproxydEntries)
		}
		ip, err := readEntry(r)
		if err != nil {
			return nil, answerErr(err, "entry %d", i)
		}
		if !containsAddr(addrs, ip) {
			addrs = append(addrs, ip)
		}
	}
	if len(addrs) == 0 {
		return nil, classify(nil, []error{ErrNameNotFound}, "no address in the answer")
	}
	return addrs, nil
}

// readEntry reads one addrinfo after its continuation word and returns its address.
func readEntry(r *bufio.Reader) (netip.Addr, error) {
	var w [5]int32 // ai_flags, ai_family, ai_socktype, ai_protocol, ai_addrlen
	for i := range w {
		v, err := readBE32(r)
		if err != nil {
			return netip.Addr{}, err
		}
		w[i] = v
	}
	family, addrlen := w[1], w[4]
	var want int32
	switch family {
	case afInet:
		want = sizeofSockaddrIn
	case afInet6:
		want = sizeofSockaddrIn6
	default:
		return netip.Addr{}, errors.New("address family " + strconv.Itoa(int(family)) + ", want AF_INET or AF_INET6")
	}
	if addrlen != want {
		return netip.Addr{}, errors.New("address length " + strconv.Itoa(int(addrlen)) + ", want " + strconv.Itoa(int(want)) + " for family " + strconv.Itoa(int(family)))
	}
	var sa [sizeofSockaddrIn6]byte
	if _, err := io.ReadFull(r, sa[:addrlen]); err != nil {
		return netip.Addr{}, err
	}
	if f := int32(binary.NativeEndian.Uint16(sa[:2])); f != family { // sa_family: host order
		return netip.Addr{}, errors.New("sockaddr family " + strconv.Itoa(int(f)) + " differs from ai_family " + strconv.Itoa(int(family)))
	}
	var ip netip.Addr
	if family == afInet {
		ip = netip.AddrFrom4([4]byte(sa[4:8])) // after sin_family and sin_port
	} else {
		ip = netip.AddrFrom16([16]byte(sa[8:24])) // after sin6_family, sin6_port, sin6_flowinfo
		if scope := binary.NativeEndian.Uint32(sa[24:28]); scope != 0 && (ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast()) {
			ip = ip.WithZone(strconv.FormatUint(uint64(scope), 10))
		}
	}
	if !ip.IsValid() || ip.IsUnspecified() {
		return netip.Addr{}, errors.New("unspecified address " + ip.String())
	}
	n, err := readBE32(r) // ai_canonname, NUL included
	switch {
	case err != nil:
		return netip.Addr{}, err
	case n < 0 || n > maxCanonName:
		return netip.Addr{}, errors.New("canonical name of " + strconv.Itoa(int(n)) + " bytes, at most " + strconv.Itoa(maxCanonName))
	case n > 0:
		var name [maxCanonName]byte
		if _, err := io.ReadFull(r, name[:n]); err != nil {
			return netip.Addr{}, err
		}
		if name[n-1] != 0 {
			return netip.Addr{}, errors.New("canonical name not NUL-terminated")
		}
	}
	return ip, nil
}

// readFailure decodes the rest of a 401 answer: length 4 and the EAI_* code.
func readFailure(r *bufio.Reader) error {
	n, err := readBE32(r)
	if err != nil {
		return answerErr(err, "reading the length of the error code")
	}
	if n != 4 {
		return answerErr(nil, "error code of %d bytes, want 4", n)
	}
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return answerErr(err, "reading the error code")
	}
	code := int32(binary.NativeEndian.Uint32(b[:])) // host order: sendBinaryMsg copies it as is
	name := eaiNames[code]
	if name == "" {
		name = "EAI " + strconv.Itoa(int(code))
	}
	if code == eaiNodata || code == eaiNoname {
		return classify(nil, []error{ErrNameNotFound}, "name not found (%s)", name)
	}
	return classify(nil, []error{ErrFailed}, "lookup failed (%s)", name)
}

// readText reads the message of a text answer up to its NUL, at most maxDnsproxydText
// bytes, and returns it printable.
func readText(r *bufio.Reader) (string, error) {
	var b strings.Builder
	for b.Len() < maxDnsproxydText {
		c, err := r.ReadByte()
		if err != nil {
			return "", err
		}
		if c == 0 {
			return strconv.QuoteToASCII(b.String()), nil
		}
		b.WriteByte(c)
	}
	return "", errors.New("message longer than " + strconv.Itoa(maxDnsproxydText) + " bytes")
}

func parseCode(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func readBE32(r *bufio.Reader) (int32, error) {
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, err
	}
	return int32(binary.BigEndian.Uint32(b[:])), nil
}

func containsAddr(list []netip.Addr, a netip.Addr) bool {
	for _, b := range list {
		if a == b {
			return true
		}
	}
	return false
}

// answerErr is an answer that breaks the protocol: it matches ErrFailed, and
// cause (io.ErrUnexpectedEOF, a timeout) when there is one.
func answerErr(cause error, format string, args ...any) error {
	if errors.Is(cause, io.EOF) {
		cause = io.ErrUnexpectedEOF // the proxy closed the connection mid-answer
	}
	return classify(cause, []error{ErrFailed}, "bad answer: "+format, args...)
}
