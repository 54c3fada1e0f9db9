#!/usr/bin/env bash
# The one set-up script: system packages (where this machine lets us install them), then
# bigeval itself.  Used by both README commands and by CI.
#
#   ./install.sh         bigeval and its runtime dependencies (the demo)
#   ./install.sh test    the same, plus the test tools and what the marked tests need
#
# Python packages go into the project environment .venv (created here); system packages come
# from Debian/Ubuntu apt when we are root (or have password-less sudo);
# elsewhere they are skipped with a note, and the optional parts fall back (CHOLMOD -> the
# built-in sparse solvers) or their tests skip.
set -euo pipefail
cd "$(dirname "$0")"
mode="${1:-run}"

# runtime: SuiteSparse headers + a threaded OpenBLAS for the CHOLMOD binding
SYSTEM_PACKAGES=(libsuitesparse-dev libopenblas0-pthread)
if [[ "$mode" == "test" ]]; then
    # headless browser for the HTML report test
    SYSTEM_PACKAGES+=(chromium)
fi

have_apt=0
if command -v apt-get >/dev/null 2>&1; then
    if [[ "$(id -u)" == "0" ]]; then SUDO=""; have_apt=1
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; have_apt=1
    fi
fi

missing=()
if [[ $have_apt == 1 ]]; then
    for p in "${SYSTEM_PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if (( ${#missing[@]} )); then
        echo "install.sh: system packages: ${missing[*]}"
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
    # CHOLMOD calls BLAS through libblas.so.3: it must be the threaded OpenBLAS, not the
    # reference BLAS (a 210 000-equation MME factored in 14.7 s against 88 s; shared notes).
    # Debian's alternatives pick OpenBLAS by priority unless set by hand: set it if not.
    for want in /usr/lib/*/openblas-pthread/libblas.so.3 /usr/lib/*/openblas-pthread/liblapack.so.3; do
        [[ -e "$want" ]] || continue
        lib="$(basename "$want")"
        alt="$lib-$(basename "$(dirname "$(dirname "$want")")")"  # e.g. libblas.so.3-x86_64-linux-gnu
        if update-alternatives --query "$alt" >/dev/null 2>&1 \
                && ! update-alternatives --query "$alt" | grep -qx "Value: $want"; then
            echo "install.sh: pointing $lib at the threaded OpenBLAS"
            $SUDO update-alternatives --set "$alt" "$want" >/dev/null
        fi
    done
else
    echo "install.sh: no apt (or not root): skipping system packages ${SYSTEM_PACKAGES[*]}" >&2
fi

extras=""
# test: the test tools, and the cluster extra so the SLURM/PBS/Kubernetes recipes are checked
[[ "$mode" == "test" ]] && extras="test,cluster"
# the CHOLMOD binding only where its headers are present
if [[ -f /usr/include/suitesparse/cholmod.h ]]; then
    extras="${extras:+$extras,}cholmod"
fi
# bigeval and its Python packages go into the project environment .venv, never into the
# system Python's packages
venv=.venv
if [[ ! -x "$venv/bin/python" ]]; then
    echo "install.sh: creating the project environment $venv"
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".${extras:+[$extras]}"
echo "install.sh: bigeval installed in $venv ($venv/bin/bigeval; '. $venv/bin/activate' puts it on PATH)"
