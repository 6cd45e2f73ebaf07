#!/bin/sh
# Redis for virtnet: persistence on, no anonymous access, one ACL user per role and per host.
#   VIRTNET_REDIS_API_PASSWORD       user "api": pushes tasks to the control and host queues
#   VIRTNET_REDIS_CONTROL_PASSWORD   user "control": consumes the control queues, pushes to hosts
#   VIRTNET_REDIS_HOSTS              "NAME:PASSWORD ..." one user "host-NAME" per host worker:
#                                    it consumes only queue host.NAME and may only push (never
#                                    read) the control queues
#   VIRTNET_REDIS_DIR                data and ACL file (default /data)
# Extra arguments go to redis-server, e.g. TLS for hosts on other machines:
#   --tls-port 6380 --port 0 --tls-cert-file ... --tls-key-file ... --tls-ca-cert-file ...
# Key names are kombu's (virtnet sets priority_steps=[0], so a queue is exactly one list) and
# the per-host unacked keys of app/celery_app.py.
set -eu
dir=${VIRTNET_REDIS_DIR:-/data}
acl="$dir/users.acl"
mkdir -p "$dir"
umask 077

hash() { printf %s "$1" | sha256sum | cut -c1-64; }
need() { eval "v=\${$1:-}"; [ -n "$v" ] || { echo "start.sh: set $1" >&2; exit 2; }; }
need VIRTNET_REDIS_API_PASSWORD
need VIRTNET_REDIS_CONTROL_PASSWORD

cmds="-@all +@connection +@keyspace +@read +@write +@list +@set +@sortedset +@hash +@string"
cmds="$cmds +@transaction +@scripting +@blocking -@dangerous"
{
    echo "user default off resetkeys -@all"
    echo "user api on #$(hash "$VIRTNET_REDIS_API_PASSWORD") resetchannels $cmds" \
        "~control ~control.heartbeat ~host.* ~_kombu.binding.* ~_kombu.binding_permanent.*"
    echo "user control on #$(hash "$VIRTNET_REDIS_CONTROL_PASSWORD") resetchannels $cmds" \
        "~control ~control.heartbeat ~host.* ~_kombu.binding.* ~_kombu.binding_permanent.*" \
        "~unacked ~unacked_index ~unacked_mutex"
    for entry in ${VIRTNET_REDIS_HOSTS:-}; do
        name=${entry%%:*}
        password=${entry#*:}
        case $name in
            *[!A-Za-z0-9._-]*|"") echo "start.sh: bad host name '$name'" >&2; exit 2 ;;
        esac
        [ -n "$password" ] && [ "$password" != "$entry" ] || {
            echo "start.sh: host '$name' needs NAME:PASSWORD" >&2; exit 2; }
        echo "user host-$name on #$(hash "$password") resetchannels $cmds" \
            "~host.$name ~_kombu.binding.host.$name ~_kombu.binding_permanent.host.$name" \
            "~unacked:host.$name ~unacked_index:host.$name ~unacked_mutex:host.$name" \
            "%W~control %W~control.heartbeat"
    done
} > "$acl"

exec redis-server --dir "$dir" --aclfile "$acl" \
    --appendonly yes --appendfsync everysec "$@"
