#!/usr/bin/env bash
# Rebuilds the committed leaderboard from scratch: every built-in method on digits
# (the card's MLP, and the CNN) and on MNIST-1D (the card's 1-D CNN), at noise rate 0,
# symmetric 0.2/0.4/0.6/0.8, uniform 0.4, pair-flip 0.2/0.4 and asymmetric 0.4; five
# seeds; each with the method's default params, forward and backward also with T
# estimated from anchor points, then every method with params tuned with one equal
# trial budget per setup (leaderboard/suites/{standard,digits-cnn,mnist1d}.toml).
#
#   leaderboard/reproduce.sh [STORE] [SETUP...]   SETUP: digits-mlp digits-cnn mnist1d
#
# Run from the repository root with noisebench installed (with the mnist1d extra).
# Setups are independent: run them in parallel on separate cores if you have them.
# To keep them out of the way of other work, lower their priority with
# `echo 19 > /proc/self/autogroup` first: under Linux's autogroup scheduling, `nice`
# alone only orders processes within one terminal session, not against the others.
# It resumes: a configuration the store holds (made by any commit, as the board shows
# it) is not trained again, and a sweep skips the cells whose final runs are stored.
# Where a setup's tuning stands, and about how long it has left:
#   noisebench sweep --suite mnist1d --store STORE --status
# The compute it took is stated in the leaderboard's README section of the main README.
set -euo pipefail
store=${1:-leaderboard}
shift || true
setups=("$@")
[ ${#setups[@]} -gt 0 ] || setups=(digits-mlp digits-cnn mnist1d)

noise_settings=(
  "symmetric 0" "symmetric 0.2" "symmetric 0.4" "symmetric 0.6" "symmetric 0.8"
  "uniform 0.4" "pairflip 0.2" "pairflip 0.4" "asymmetric 0.4"
)

run_setup() {  # defaults, estimated T, then the tuned rows of one dataset x model
  local suite=$1; shift
  local setting kind rate method
  for setting in "${noise_settings[@]}"; do
    read -r kind rate <<<"$setting"
    for method in ce ls gls forward backward flip \
        gce sce bootstrap_soft bootstrap_hard nce_mae elr coteaching; do
      noisebench evaluate "$@" --method "$method" --noise-type "$kind" --noise "$rate" \
        --seeds 5 --any-commit --store "$store" --json >/dev/null
    done
    for method in forward backward; do
      noisebench evaluate "$@" --method "$method" --noise-type "$kind" --noise "$rate" \
        --transition estimated --seeds 5 --any-commit --store "$store" --json >/dev/null
    done
  done
  noisebench sweep --suite "$suite" --store "$store" --json >/dev/null
}

for setup in "${setups[@]}"; do
  case $setup in
    digits-mlp) run_setup standard --dataset digits ;;
    digits-cnn) run_setup digits-cnn --dataset digits --model cnn ;;
    mnist1d) run_setup mnist1d --dataset mnist1d ;;
    *) echo "unknown setup '$setup'; choose from: digits-mlp digits-cnn mnist1d" >&2; exit 2 ;;
  esac
done
noisebench leaderboard --store "$store"
