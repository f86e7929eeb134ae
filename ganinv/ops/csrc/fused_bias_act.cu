// fused_bias_act: y = lrelu(x + bias, alpha) * scale (grad_mode 0), or its derivative applied to an
// incoming gradient, dx = dy * (ref > 0 ? 1 : alpha) * scale (grad_mode 1, ref = the forward output).
//
// An elementwise op: one grid-stride loop over the flattened tensor. Half tensors are computed in
// float and rounded once at the end; float and double are computed in their own precision, in the
// same order of operations as the PyTorch reference (add, leaky ReLU, multiply).

#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "ganinv_ops.h"

namespace ganinv {
namespace {

// The value of output element i. A __host__ __device__ function so that the arithmetic can also be
// exercised on the CPU.
template <typename scalar_t, typename acc_t, typename index_t>
__host__ __device__ __forceinline__ scalar_t fused_bias_act_element(const scalar_t* __restrict__ x,
                                                                    const scalar_t* __restrict__ bias,
                                                                    const scalar_t* __restrict__ ref,
                                                                    index_t i, index_t inner,
                                                                    index_t channels, int grad_mode,
                                                                    acc_t alpha, acc_t scale) {
  acc_t v = static_cast<acc_t>(x[i]);
  if (grad_mode == 0) {
    if (bias != nullptr) {
      v += static_cast<acc_t>(bias[(i / inner) % channels]);
    }
    v = v > acc_t(0) ? v : v * alpha;
    return static_cast<scalar_t>(v * scale);
  }
  const acc_t gain = static_cast<acc_t>(ref[i]) > acc_t(0) ? acc_t(1) : alpha;
  return static_cast<scalar_t>(v * gain * scale);
}

template <typename scalar_t, typename acc_t, typename index_t>
__global__ void fused_bias_act_kernel(scalar_t* __restrict__ out, const scalar_t* __restrict__ x,
                                      const scalar_t* __restrict__ bias,
                                      const scalar_t* __restrict__ ref, index_t n, index_t inner,
                                      index_t channels, int grad_mode, acc_t alpha, acc_t scale) {
  const index_t stride = static_cast<index_t>(blockDim.x) * static_cast<index_t>(gridDim.x);
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    out[i] = fused_bias_act_element<scalar_t, acc_t, index_t>(x, bias, ref, i, inner, channels,
                                                              grad_mode, alpha, scale);
  }
}

constexpr int kFbaThreads = 256;

int multiprocessor_count() {
  int count = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, c10::cuda::current_device()));
  return count;
}

}  // namespace

at::Tensor fused_bias_act_cuda(const at::Tensor& x, const at::Tensor& bias, const at::Tensor& ref,
                               int64_t grad_mode, double alpha, double scale) {
  at::Tensor out = at::empty(x.sizes(), x.options());
  const int64_t n = x.numel();
  if (n == 0) {
    return out;
  }
  const int64_t channels = x.size(1);
  const int64_t inner = n / (x.size(0) * channels);  // product of the dims after the channel dim
  const bool use_bias = grad_mode == 0 && bias.numel() > 0;
  const bool use_ref = grad_mode == 1;

  // A grid-stride loop: enough blocks to fill the device a few times over, not one per 256 elements.
  const int64_t wanted = (n + kFbaThreads - 1) / kFbaThreads;
  const int64_t cap = static_cast<int64_t>(multiprocessor_count()) * 32;
  const unsigned int blocks = static_cast<unsigned int>(std::max<int64_t>(1, std::min(wanted, cap)));
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES_AND_HALF(x.scalar_type(), "ganinv_fused_bias_act", [&] {
    using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
    const scalar_t* x_ptr = x.const_data_ptr<scalar_t>();
    const scalar_t* bias_ptr = use_bias ? bias.const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* ref_ptr = use_ref ? ref.const_data_ptr<scalar_t>() : nullptr;
    scalar_t* out_ptr = out.mutable_data_ptr<scalar_t>();
    const acc_t a = static_cast<acc_t>(alpha);
    const acc_t s = static_cast<acc_t>(scale);
    const int mode = static_cast<int>(grad_mode);
    if (n <= std::numeric_limits<int32_t>::max()) {
      // 32-bit unsigned indices: i + stride cannot wrap because n < 2^31 and stride < 2^31.
      fused_bias_act_kernel<scalar_t, acc_t, uint32_t><<<blocks, kFbaThreads, 0, stream>>>(
          out_ptr, x_ptr, bias_ptr, ref_ptr, static_cast<uint32_t>(n), static_cast<uint32_t>(inner),
          static_cast<uint32_t>(channels), mode, a, s);
    } else {
      fused_bias_act_kernel<scalar_t, acc_t, int64_t><<<blocks, kFbaThreads, 0, stream>>>(
          out_ptr, x_ptr, bias_ptr, ref_ptr, n, inner, channels, mode, a, s);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace ganinv
