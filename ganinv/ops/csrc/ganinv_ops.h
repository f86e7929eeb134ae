// Host-side entry points of the ganinv CUDA kernels.
//
// ganinv_ops.cpp validates the arguments (device, dtype, shape, contiguity) and then calls these
// launchers, which assume valid input, allocate the output and launch on the current CUDA stream.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace ganinv {

// fused_bias_act: see ganinv/ops/_reference.py. `x` is contiguous with ndim >= 2 (channels on dim 1);
// `bias` is [C] (only read when grad_mode == 0 and it is non-empty); `ref` has x's shape (only read
// when grad_mode == 1).
at::Tensor fused_bias_act_cuda(const at::Tensor& x, const at::Tensor& bias, const at::Tensor& ref,
                               int64_t grad_mode, double alpha, double scale);

// Geometry of one upfirdn2d call. All sizes fit comfortably in int (checked by the caller).
struct UpFirDn2dParams {
  int64_t planes;  // N * C: every plane is filtered separately
  int in_h, in_w;
  int out_h, out_w;
  int up_x, up_y;
  int down_x, down_y;
  int pad_x0, pad_y0;  // the far pads only enter through out_h / out_w
  int k_h, k_w;
};

// upfirdn2d: see ganinv/ops/_reference.py. `x` is a contiguous [N, C, H, W] tensor, `kernel` a
// contiguous [kh, kw] tensor of the same dtype on the same device.
at::Tensor upfirdn2d_cuda(const at::Tensor& x, const at::Tensor& kernel, const UpFirDn2dParams& p);

}  // namespace ganinv
