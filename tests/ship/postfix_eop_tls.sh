#!/usr/bin/env bash
# The Postfix snippet of packaging/postfix, run: a private Postfix (its own
# configuration and queue directories) in a network namespace of this test,
# configured with main.cf.smtpgate-eop-tls, master.cf.smtpgate-eop-tls, the
# policy script and the cidr: table eop-cidr.sh makes from a "ranges list
# --json", with a test CA made here. Clients connect over the namespace's
# loopback from an EOP address and from a stranger's:
#   (a) EOP address, STARTTLS, EOP's certificate name: RCPT accepted
#   (b) EOP address, plaintext: refused
#   (c) EOP address, STARTTLS, another certificate name: refused
#   (d) EOP address, STARTTLS, EOP's name from an untrusted CA: refused
#   (e) stranger, plaintext: accepted (unaffected)
# Everything made (namespace, Postfix, files) is removed, also on failure.
# Usage: postfix_eop_tls.sh SOURCE_DIR. Exit 77 (skipped) without Postfix.
set -euo pipefail
src=$(cd "$1" && pwd)
snip=$src/packaging/postfix
command -v postfix >/dev/null && command -v postconf >/dev/null ||
    { echo "skipped: no postfix (scripts/setup-deps.sh installs it)"; exit 77; }

tag=sgt$$pfx
ns=$tag
work=$(mktemp -d "/tmp/$tag.XXXXXX")
chmod 755 "$work"
conf=$work/conf
started=
cleanup() {
    set +e
    if [ -n "$started" ]; then
        postfix -c "$conf" stop >/dev/null 2>&1
        pid=$(cat "$work/queue/pid/master.pid" 2>/dev/null | tr -d ' ')
        for _ in $(seq 50); do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    fi
    ip netns del "$ns" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    [ -f "$work/maillog" ] && tail -30 "$work/maillog" && echo
    exit 1
}
in_ns() { nsenter --net="/var/run/netns/$ns" "$@"; }

server=192.0.2.25
eop=40.92.0.10
stranger=198.51.100.7
ip netns add "$ns"
ip -n "$ns" link set lo up
for a in $server $eop $stranger; do ip -n "$ns" addr add "$a/32" dev lo; done

# Test CAs: the trusted one signs the server's and the clients' certificates,
# a second one (not trusted by Postfix) signs a forged EOP certificate.
pki=$work/pki
mkdir "$pki"
ossl() { openssl "$@" >/dev/null 2>&1 || fail "openssl $1 $2 failed"; }
newca() {
    ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=$2" -keyout "$pki/$1.key" -out "$pki/$1.crt"
}
newcert() {  # name CA CN extensions
    ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=$3" -keyout "$pki/$1.key" -out "$pki/$1.csr"
    printf '%s\n' "$4" > "$pki/$1.ext"
    ossl x509 -req -in "$pki/$1.csr" -CA "$pki/$2.crt" -CAkey "$pki/$2.key" -CAcreateserial \
        -days 2 -extfile "$pki/$1.ext" -out "$pki/$1.crt"
}
newca ca "smtpgate test CA"
newca rogue "another CA"
newcert server ca gate.example.test "subjectAltName=DNS:gate.example.test,IP:$server
extendedKeyUsage=serverAuth"
client_ext="extendedKeyUsage=clientAuth,serverAuth"
newcert eop ca mail.protection.outlook.com "subjectAltName=DNS:mail.protection.outlook.com
$client_ext"
newcert other ca mail.example.net "subjectAltName=DNS:mail.example.net
$client_ext"
newcert forged rogue mail.protection.outlook.com "subjectAltName=DNS:mail.protection.outlook.com
$client_ext"
chmod 644 "$pki"/*.crt

# The cidr: table from a ranges list, as docs/operations.md says.
sh "$snip/eop-cidr.sh" < "$src/tests/ship/eop-ranges.json" > "$work/smtpgate-eop.cidr" ||
    fail "eop-cidr.sh failed"
grep -q "^40.92.0.0/15	smtpgate_eop_tls$" "$work/smtpgate-eop.cidr" || fail "40.92.0.0/15 not in the table"
grep -q "^198.51.100.0/24" "$work/smtpgate-eop.cidr" && fail "an operator range is in the table"
grep -q "^104.47.0.0/17" "$work/smtpgate-eop.cidr" && fail "a range removed from the feed is in the table"
echo '{"schema": 1, "ranges": []}' | sh "$snip/eop-cidr.sh" >/dev/null 2>&1 &&
    fail "eop-cidr.sh accepted a list without feed ranges"

# The policy script where the shipped master.cf line expects it, here in
# $work; its input is bounded.
install -m 0755 "$snip/smtpgate-eop-tls-policy" "$work/smtpgate-eop-tls-policy"
long=$(head -c 5000 /dev/zero | tr '\0' a)
out=$(printf 'request=smtpd_access_policy\nsender=%s\n\n' "$long" | "$work/smtpgate-eop-tls-policy" || true)
echo "$out" | grep -q '^action=451 ' || fail "the policy script did not refuse a line of 5000 bytes"
printf 'request=smtpd_access_policy\nencryption_protocol=TLSv1.3\nccert_subject=MAIL.protection.outlook.com\n\n' |
    "$work/smtpgate-eop-tls-policy" | grep -qx 'action=DUNNO' || fail "the policy script refused EOP's name"

mkdir "$conf"
mkdir -m 0755 "$work/queue"
cat > "$conf/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $work/queue
data_directory = $work/data
maillog_file_prefixes = $work
maillog_file = $work/maillog
myhostname = gate.example.test
mydomain = example.test
mydestination = example.test
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
inet_interfaces = $server
inet_protocols = ipv4
smtpd_peername_lookup = no
smtpd_tls_cert_file = $pki/server.crt
smtpd_tls_key_file = $pki/server.key
smtpd_tls_loglevel = 1
CONF
# The snippet as shipped; only its paths point into this test.
sed -e "s#/etc/ssl/certs/ca-certificates.crt#$pki/ca.crt#" \
    -e "s#/etc/postfix/smtpgate-eop.cidr#$work/smtpgate-eop.cidr#" \
    "$snip/main.cf.smtpgate-eop-tls" >> "$conf/main.cf"
cat > "$conf/master.cf" <<'CONF'
smtp      inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CONF
sed -e "s#/usr/local/lib/smtpgate/smtpgate-eop-tls-policy#$work/smtpgate-eop-tls-policy#" \
    "$snip/master.cf.smtpgate-eop-tls" >> "$conf/master.cf"
grep -q "$work/smtpgate-eop-tls-policy" "$conf/master.cf" || fail "master.cf.smtpgate-eop-tls: no argv path to replace"

# Inside the namespace: inet_interfaces names an address only it has.
# Postfix reports its errors to syslog; maillog_file takes over once it runs.
in_ns postfix -c "$conf" check >/dev/null 2>&1 || fail "postfix -c $conf check failed (in the namespace)"
started=1
in_ns postfix -c "$conf" start >/dev/null 2>&1 || fail "postfix start failed"
for _ in $(seq 100); do
    in_ns ss -ltnH "sport = :25" | grep -q . && break
    sleep 0.1
done
in_ns ss -ltnH "sport = :25" | grep -q . || fail "Postfix does not listen in the namespace"

# One SMTP session: EHLO, optional STARTTLS with a client certificate,
# MAIL, RCPT; prints the RCPT reply.
rcpt() {  # source-address certificate-name|-
    in_ns timeout 20 python3 - "$server" "$1" "$2" "$pki" <<'PY'
import smtplib, ssl, sys
server, source, cert, pki = sys.argv[1:]
s = smtplib.SMTP(server, 25, timeout=10, source_address=(source, 0))
s.ehlo("client.example.net")
if cert != "-":
    ctx = ssl.create_default_context(cafile=pki + "/ca.crt")
    ctx.load_cert_chain(pki + "/" + cert + ".crt", pki + "/" + cert + ".key")
    s.starttls(context=ctx)
    s.ehlo("client.example.net")
s.mail("someone@example.net")
code, text = s.rcpt("postmaster@example.test")
print(code, text.decode(errors="replace").replace("\n", " "))
s.quit()
PY
}
expect() {  # what code source cert
    got=$(rcpt "$3" "$4") || fail "$1: the SMTP session failed"
    case "$got" in $2\ *) echo "ok: $1: RCPT $got" ;; *) fail "$1: RCPT answered $got, expected $2" ;; esac
}
expect "(a) EOP address, TLS, EOP's certificate" 250 $eop eop
expect "(b) EOP address, plaintext" '4[0-9][0-9]' $eop -
expect "(c) EOP address, TLS, another name" '4[0-9][0-9]' $eop other
expect "(d) EOP address, TLS, EOP's name, untrusted CA" '4[0-9][0-9]' $eop forged
expect "(e) stranger, plaintext" 250 $stranger -
grep -q "reject: RCPT from unknown\[$eop\].*certificate name is not mail.protection.outlook.com" "$work/maillog" ||
    fail "the maillog does not show the policy's refusal of (c)"
echo "PASS"
