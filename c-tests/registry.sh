#!/bin/sh
# Starts (or stops) the loopback registries the C registry test talks to, as a ctest fixture:
#   registry.sh start DIR   -> DIR/host (open registry) and DIR/auth_host (Basic auth, user
#                              "ocicas", password "secret"), each "127.0.0.1:PORT"
#   registry.sh stop DIR    -> kills them by the pids recorded in DIR
# Exits 77 (skipped) when docker-registry or htpasswd is not installed.
set -eu
mode=$1 dir=$2

start_one() {  # start_one NAME [htpasswd-file]: tries random free ports until one serves /v2/
    name=$1 htpasswd=${2:-}
    expected=200
    [ -n "$htpasswd" ] && expected=401
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000 ))
        # A port something already answers on (the other registry, say) would pass the probe below.
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/" || true)" = 000 ] || continue
        data="$dir/$name-data"
        mkdir -p "$data"
        {
            echo "version: 0.1"
            echo "log: {level: error}"
            echo "storage: {filesystem: {rootdirectory: $data}, delete: {enabled: true}}"
            echo "http: {addr: 127.0.0.1:$port}"
            [ -n "$htpasswd" ] && echo "auth: {htpasswd: {realm: ocicas-test, path: $htpasswd}}"
        } > "$dir/$name.yml"
        docker-registry serve "$dir/$name.yml" > "$dir/$name.log" 2>&1 &
        echo $! > "$dir/$name.pid"
        for wait in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
            code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" || true)
            if [ "$code" = "$expected" ]; then
                echo "127.0.0.1:$port" > "$dir/$name"
                return 0
            fi
            kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null || break  # the port was taken
            sleep 0.25
        done
        kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
    done
    echo "could not start docker-registry; see $dir/$name.log" >&2
    exit 1
}

case $mode in
start)
    # No address file stays behind from an earlier run: test_registry skips when there is none.
    rm -rf "$dir" && mkdir -p "$dir"
    command -v docker-registry >/dev/null && command -v htpasswd >/dev/null ||
        { echo "skipped: docker-registry or htpasswd is not installed (apt-get install docker-registry apache2-utils)"; exit 77; }
    htpasswd -Bbn ocicas secret > "$dir/htpasswd"
    start_one host
    start_one auth_host "$dir/htpasswd"
    ;;
stop)
    for pid in "$dir"/*.pid; do
        [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
    done
    ;;
esac
