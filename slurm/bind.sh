#!/usr/bin/env bash
# slurm/bind.sh CMD... - run by srun once per rank: give the rank one GPU, then exec CMD.
#
# With `--gpus-per-node=G --ntasks-per-node=G` Slurm hands every rank of a node the same list
# CUDA_VISIBLE_DEVICES=0,...,G-1; a rank then takes entry SLURM_LOCALID (mod G), so node-local rank
# r drives GPU r and capheads sees exactly one device (its device 0).  When Slurm already bound one
# GPU per task (--gpus-per-task=1 / --gpu-bind), the list has one entry and is left alone.
# CH_GPU_BIND=none disables this (e.g. to let a rank see all GPUs).
if [ "${CH_GPU_BIND:-localid}" = localid ] && [ -n "${CUDA_VISIBLE_DEVICES:-}" ] && [ -n "${SLURM_LOCALID:-}" ]; then
  IFS=, read -ra ch_gpus <<<"$CUDA_VISIBLE_DEVICES"
  if [ "${#ch_gpus[@]}" -gt 1 ]; then
    export CUDA_VISIBLE_DEVICES=${ch_gpus[$((SLURM_LOCALID % ${#ch_gpus[@]}))]}
  fi
fi
exec "$@"
