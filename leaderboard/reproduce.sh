#!/usr/bin/env bash
# Rebuilds the committed leaderboard from scratch: six methods on digits under
# symmetric noise 0.2/0.4/0.6 and pair-flip noise 0.3, five seeds each, card defaults;
# forward and backward also with an estimated T. Run from the repository root with
# noisebench installed. About 12 minutes on 2 idle CPU cores.
set -euo pipefail
store=${1:-leaderboard}
for method in ce ls gls forward backward flip; do
  for rate in 0.2 0.4 0.6; do
    noisebench evaluate --method "$method" --noise "$rate" --seeds 5 --store "$store" --json >/dev/null
  done
  noisebench evaluate --method "$method" --noise-type pairflip --noise 0.3 --seeds 5 --store "$store" --json >/dev/null
done
# Loss correction as a practitioner runs it: with T estimated from anchor points.
for method in forward backward; do
  for rate in 0.2 0.4 0.6; do
    noisebench evaluate --method "$method" --noise "$rate" --transition estimated --seeds 5 --store "$store" --json >/dev/null
  done
  noisebench evaluate --method "$method" --noise-type pairflip --noise 0.3 --transition estimated --seeds 5 --store "$store" --json >/dev/null
done
# The tuned rows: every method tuned on noisy validation (suites/standard.toml).
noisebench sweep --suite standard --store "$store" --json >/dev/null
noisebench leaderboard --store "$store"
