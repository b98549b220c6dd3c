#!/usr/bin/env bash
# Tests `make install` and `make uninstall` into a DESTDIR (part of `make test`): the exact file
# list and modes, the files' contents, the header compiling as <cmamap.h>, the modprobe.d file
# naming every module parameter with its default, a module for another kernel refused, and
# nothing left after uninstall. Prints KTAP-style lines and "N passed, N failed".
#   scripts/test-install.sh [MODULE [CLI]]
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$CMAMAP_ROOT"

module=$(realpath "${1:-cmamap.ko}")
cli=$(realpath "${2:-userspace/target/x86_64-unknown-linux-gnu/release/cmamap}")
[ -f "$module" ] || die "$module missing: run make"
[ -x "$cli" ] || die "$cli missing: run make userspace"
kver=$(modinfo -F vermagic "$module" | cut -d' ' -f1)
dest=$(mktemp -d "${TMPDIR:-/tmp}/cmamap-install.XXXXXX")
trap 'rm -rf "$dest" "$dest.log" "$dest.c"' EXIT

pass=0 fail=0 n=0
check() { # check NAME OK [DETAIL]
    n=$((n + 1))
    if [ "$2" = 1 ]; then
        pass=$((pass + 1))
        echo "ok $n install: $1"
    else
        fail=$((fail + 1))
        echo "not ok $n install: $1${3:+ # $3}"
    fi
}
inst() { make -s --no-print-directory DESTDIR="$dest" PREFIX=/usr KVER="$kver" INSTALL_MODULE="$module" \
    CLI="$cli" "$@"; }

inst install >"$dest.log" 2>&1
check "make install DESTDIR=... succeeds" "$([ $? = 0 ] && echo 1 || echo 0)" "$(tail -3 "$dest.log")"

expected="0644 /etc/modprobe.d/cmamap.conf
0644 /etc/udev/rules.d/60-cmamap.rules
0644 /lib/modules/$kver/updates/cmamap.ko
0644 /usr/include/cmamap.h
0755 /usr/bin/cmamap"
got=$(cd "$dest" && find . \( -type f -o -type l \) -printf '%m /%P\n' | sed 's/^\([0-7]\{3\}\) /0\1 /' | sort)
check "installs exactly the five files with their modes" "$([ "$got" = "$expected" ] && echo 1 || echo 0)" \
    "got: $(tr '\n' ';' <<<"$got")"
check "the module and the CLI are the built ones" \
    "$(cmp -s "$module" "$dest/lib/modules/$kver/updates/cmamap.ko" && cmp -s "$cli" "$dest/usr/bin/cmamap" && echo 1 || echo 0)"
check "udev rule: /dev/cmamap to group cmamap, mode 0660" \
    "$(grep -qx 'SUBSYSTEM=="misc", KERNEL=="cmamap", GROUP="cmamap", MODE="0660"' "$dest/etc/udev/rules.d/60-cmamap.rules" && echo 1 || echo 0)"

# The header as users include it: <cmamap.h> with -I PREFIX/include, no other path.
printf '#include <cmamap.h>\nint main(void) { struct cmamap_alloc a = {0}; return (int)sizeof(a) + CMAMAP_IOC_ALLOC * 0; }\n' >"$dest.c"
cc_out=$(gcc -Wall -Werror -fsyntax-only -I"$dest/usr/include" "$dest.c" 2>&1)
check "the installed header compiles as <cmamap.h>" "$([ $? = 0 ] && echo 1 || echo 0)" "$cc_out"

# Every parameter of module! (driver/cmamap_main.rs) is in the modprobe.d file with its default.
params=$(awk '/params: \{/ {p=1} p && /^        [a-z_]+: / {name=$1; sub(":", "", name)}
    p && /^ +default: / {v=$2; sub(",", "", v); print name "=" v} p && /^    \},/ {p=0}' driver/cmamap_main.rs)
missing=""
for kv in $params; do
    grep -qx "#options cmamap $kv" "$dest/etc/modprobe.d/cmamap.conf" || missing+="$kv "
done
check "modprobe.d file lists every parameter with its default ($(wc -w <<<"$params") found)" \
    "$([ -n "$params" ] && [ -z "$missing" ] && echo 1 || echo 0)" "missing: $missing"
check "modprobe.d file sets nothing by default" \
    "$(! grep -qE '^[[:space:]]*options' "$dest/etc/modprobe.d/cmamap.conf" && echo 1 || echo 0)"

make -s --no-print-directory DESTDIR="$dest/other" KVER=0.0.0-not-this INSTALL_MODULE="$module" CLI="$cli" \
    install >"$dest.log" 2>&1
rc=$?
check "a module built for another kernel is refused" \
    "$([ $rc != 0 ] && grep -q "built for $kver, not 0.0.0-not-this" "$dest.log" && [ ! -e "$dest/other" ] && echo 1 || echo 0)" \
    "rc $rc: $(tail -1 "$dest.log")"

inst uninstall >"$dest.log" 2>&1
check "make uninstall succeeds" "$([ $? = 0 ] && echo 1 || echo 0)" "$(tail -3 "$dest.log")"
left=$(cd "$dest" && find . -mindepth 1 \( -type f -o -type l \) -printf '/%P\n')
check "uninstall leaves no file behind" "$([ -z "$left" ] && echo 1 || echo 0)" "left: $(tr '\n' ' ' <<<"$left")"
rm -f "$dest.log" "$dest.c"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
