#!/bin/sh
# s3rver (an S3-compatible server from npm) for the tests of log streams.
#   tests/streams/s3rver.sh install
#       installs s3rver 3.7.1 into build/npm/s3rver-3.7.1 when missing (npm
#       from Debian's package when there is none; several callers at once
#       install it once); prints the path of its executable
#   tests/streams/s3rver.sh serve DIR BUCKET [BUCKET...]
#       installs it if needed, then runs it in the foreground on 127.0.0.1 on
#       a free port with DIR as its store and the buckets made: prints
#       "PORT n" once it listens. Its credentials are its defaults, access key
#       id S3RVER and secret S3RVER; an object is DIR/<bucket>/<key>._S3rver_object
#       (read them with s3_receiver.py check --s3rver, or GET them).
# s3rver 3.7.1 checks the access key id of a V4-signed request but not its
# signature (see s3_receiver.py, which does): it is the real S3 server the
# objects are written to and read back from, the stand-in is the signature's
# judge.
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; install | serve) ;; *) usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=3.7.1
DIR="$ROOT/build/npm/s3rver-$VERSION"
EXE="$DIR/node_modules/.bin/s3rver"

install() {
	[ -x "$EXE" ] && return 0
	command -v npm >/dev/null 2>&1 || sh "$ROOT/deploy/deps.sh" nodejs npm
	mkdir -p "$DIR"
	# One install at a time: the release and sanitizer runs start together.
	(
		flock 9
		if [ ! -x "$EXE" ]; then
			echo "s3rver.sh: installing s3rver@$VERSION into $DIR" >&2
			npm install --prefix "$DIR" --no-audit --no-fund --no-save --loglevel=error \
				"s3rver@$VERSION" >&2
		fi
	) 9>"$DIR.lock"
	[ -x "$EXE" ]
}

cmd=$1
shift
install
if [ "$cmd" = install ]; then
	echo "$EXE"
	exit 0
fi
[ $# -ge 2 ] || { usage >&2; exit 2; }
store=$1
shift
mkdir -p "$store"
# Run through its API rather than its command line, to print the port it
# got in the form the tests read ("PORT n"), with node as this process.
exec node -e '
const S3rver = require(process.argv[1]);
const [store, ...buckets] = process.argv.slice(2);
new S3rver({ address: "127.0.0.1", port: 0, directory: store, silent: true, vhostBuckets: false,
             configureBuckets: buckets.map((name) => ({ name })) })
  .run()
  .then(({ port }) => console.log("PORT " + port))
  .catch((e) => { console.error("s3rver: " + e.message); process.exit(1); });
' "$DIR/node_modules/s3rver" "$store" "$@"
