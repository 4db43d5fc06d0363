# shellcheck shell=bash
# Shared by the package tests (sourced): the source tree copied as a packager
# gets it, and the package built from a copy.

# copy_tree SRC DEST: the tree without build directories.
copy_tree() {
    mkdir -p "$2"
    if git -C "$1" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        (cd "$1" && git ls-files -co --exclude-standard -z | grep -zv '^build/' |
            tar --null -cf - -T -) | tar -xf - -C "$2"
    else
        tar -C "$1" --exclude=./build --exclude='./obj-*' --exclude=./debian/.debhelper -cf - . |
            tar -xf - -C "$2"
    fi
}

# build_deb DIR: dpkg-buildpackage -us -uc -b in DIR (2 jobs, tests off);
# the log in DIR.build.log, its tail shown on failure.
build_deb() {
    local start
    start=$(date +%s)
    (cd "$1" && DEB_BUILD_OPTIONS="parallel=2 nocheck" dpkg-buildpackage -us -uc -b >"$1.build.log" 2>&1) ||
        { tail -40 "$1.build.log"; echo "FAIL: dpkg-buildpackage failed in $1"; return 1; }
    echo "dpkg-buildpackage $(basename "$1"): $(($(date +%s) - start)) s"
}
