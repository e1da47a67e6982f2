# The local stack's certificates (sourced by deploy/local/stack.sh): a
# local CA made once, and the certificates it issues to the hops that
# terminate TLS. This file owns their names, lifetimes and extensions.
#
#   TLS_DIR/ca.crt, ca.key     the CA (ECDSA P-256, 10 years; the key 0600,
#                              never leaves TLS_DIR)
#   TLS_DIR/<name>.crt, .key   a server certificate for 127.0.0.1 and
#                              localhost (ECDSA P-256, TLS_CERT_DAYS days,
#                              serverAuth only), and <name>.pem: certificate
#                              then key, as HAProxy loads them
#
# The names the stack issues: cp (the control plane's TLS edge), router
# (every region's endpoint, HAProxy) and postgres (every cluster).
# Made with the openssl command of OpenSSL, the library every service
# already links; nothing here is a certificate format of our own.

TLS_CERT_DAYS=${TLS_CERT_DAYS:-30}
TLS_RENEW_DAYS=${TLS_RENEW_DAYS:-7}  # a start reissues a certificate this close to its end

# tls_ca DIR: makes the CA once.
tls_ca() {
	mkdir -p "$1"
	chmod 0755 "$1"
	[ -s "$1/ca.crt" ] && [ -s "$1/ca.key" ] && return 0
	( umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1/ca.key" ) 2>/dev/null ||
		return 1
	openssl req -new -x509 -key "$1/ca.key" -sha256 -days 3650 -out "$1/ca.crt" \
		-subj "/O=Celltrail local stack/CN=Celltrail local CA $(hostname 2>/dev/null || echo host)" \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null || return 1
	chmod 0644 "$1/ca.crt"
}

# tls_issue DIR NAME: a new key and certificate for NAME, signed by DIR's
# CA. The new files replace the old ones only once complete (rename), so
# that a reader never sees half of one.
tls_issue() {
	_d=$1 _n=$2
	( umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$_d/$_n.key.new" ) 2>/dev/null ||
		return 1
	cat > "$_d/$_n.ext" <<EXT
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
EXT
	openssl req -new -key "$_d/$_n.key.new" -subj "/O=Celltrail local stack/CN=$_n" 2>/dev/null |
		openssl x509 -req -CA "$_d/ca.crt" -CAkey "$_d/ca.key" -set_serial "0x$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" \
			-days "$TLS_CERT_DAYS" -sha256 -extfile "$_d/$_n.ext" -out "$_d/$_n.crt.new" 2>/dev/null || return 1
	rm -f "$_d/$_n.ext"
	( umask 077; cat "$_d/$_n.crt.new" "$_d/$_n.key.new" > "$_d/$_n.pem.new" )
	chmod 0644 "$_d/$_n.crt.new"
	mv "$_d/$_n.key.new" "$_d/$_n.key"
	mv "$_d/$_n.crt.new" "$_d/$_n.crt"
	mv "$_d/$_n.pem.new" "$_d/$_n.pem"
}

# tls_fresh DIR NAME: true when NAME's certificate exists, was issued by
# DIR's CA, lasts at least TLS_RENEW_DAYS more days, and is the key's (an
# issue cut short between its renames leaves a pair that is not).
tls_fresh() {
	[ -s "$1/$2.crt" ] && [ -s "$1/$2.key" ] && [ -s "$1/$2.pem" ] &&
		openssl verify -CAfile "$1/ca.crt" "$1/$2.crt" >/dev/null 2>&1 &&
		openssl x509 -in "$1/$2.crt" -noout -checkend $((TLS_RENEW_DAYS * 86400)) >/dev/null 2>&1 &&
		[ "$(openssl x509 -in "$1/$2.crt" -noout -pubkey 2>/dev/null)" = "$(openssl pkey -in "$1/$2.key" -pubout 2>/dev/null)" ] &&
		[ "$(openssl x509 -in "$1/$2.pem" -noout -pubkey 2>/dev/null)" = "$(openssl pkey -in "$1/$2.pem" -pubout 2>/dev/null)" ]
}

# tls_serial FILE: the serial number of the certificate in FILE (hex).
tls_serial() {
	openssl x509 -in "$1" -noout -serial 2>/dev/null | cut -d= -f2
}

# tls_haproxy_reload SOCKET FILE: hands HAProxy the new contents of FILE
# (a certificate then its key, the path as its configuration names it)
# through the runtime API, for the handshakes that follow; open
# connections keep theirs. No reload, no restart.
tls_haproxy_reload() {
	{ printf 'set ssl cert %s <<\n' "$2"; cat "$2"; printf '\n'; } | socat -t 5 stdio "unix-connect:$1" > "$2.set.out" 2>&1 &&
		grep -q "Transaction created\|Transaction updated" "$2.set.out" || { cat "$2.set.out" >&2; rm -f "$2.set.out"; return 1; }
	printf 'commit ssl cert %s\n' "$2" | socat -t 5 stdio "unix-connect:$1" > "$2.set.out" 2>&1 &&
		grep -q "Success" "$2.set.out" || { cat "$2.set.out" >&2; rm -f "$2.set.out"; return 1; }
	rm -f "$2.set.out"
}
