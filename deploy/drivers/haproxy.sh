# HAProxy runtime API helpers for the rollout drivers (sourced, POSIX sh).
#
# The caller defines lb_send, which reads runtime API commands on standard
# input and prints HAProxy's answer: the local driver talks to the stack's
# socket, the ssh driver to the socket on the cell's balancer host (its
# region's router).
#
# A cell's data planes are the servers of backend cell_<cell>. A server
# receives requests only when it is in state "ready" and its health check
# (GET /readyz) passes; in state "maint" it receives no new request while
# the ones it already has finish.

# lb_run COMMAND: one runtime API command; fails when HAProxy answers with
# an error message (set commands answer nothing on success).
lb_run() {
	_out=$(printf '%s\n' "$1" | lb_send) || return 1
	case "$_out" in
	'' | *'health check'* | *'changed from'* | *'no need to change'*) return 0 ;;
	esac
	printf 'balancer: %s: %s\n' "$1" "$_out" >&2
	return 1
}

# lb_enable BACKEND SERVER HOST PORT: points SERVER at HOST:PORT and lets
# it take requests once its health check passes.
lb_enable() {
	lb_run "set server $1/$2 addr $3 port $4" &&
		lb_run "set server $1/$2 state ready"
}

# lb_disable BACKEND SERVER: no new requests for SERVER.
lb_disable() {
	lb_run "set server $1/$2 state maint"
}

# lb_stat BACKEND SERVER: prints "STATUS SESSIONS QUEUED" of SERVER from
# `show stat` (STATUS is UP, DOWN, MAINT, "UP 1/2"... with spaces removed).
lb_stat() {
	printf 'show stat\n' | lb_send | awk -F, -v be="$1" -v sv="$2" '
		NR == 1 { for (i = 1; i <= NF; i++) { h = $i; sub(/^# /, "", h); col[h] = i }; next }
		$col["pxname"] == be && $col["svname"] == sv {
			s = $col["status"]; gsub(/ /, "", s)
			print s, $col["scur"] + 0, $col["qcur"] + 0; found = 1
		}
		END { if (!found) exit 1 }'
}

# lb_wait_idle BACKEND SERVER SECONDS: waits until SERVER has no request
# in flight or queued. Fails after SECONDS.
lb_wait_idle() {
	_n=0
	while :; do
		_s=$(lb_stat "$1" "$2") || return 1
		set -- "$1" "$2" "$3" $_s
		[ "$5" = 0 ] && [ "$6" = 0 ] && return 0
		_n=$((_n + 1))
		[ $_n -ge $(($3 * 10)) ] && return 1
		sleep 0.1
	done
}
