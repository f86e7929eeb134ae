// upfirdn2d: upsample by zero insertion, pad (negative pads crop), convolve with a 2-D FIR kernel
// (a true convolution: the kernel is flipped), keep every down-th sample. Every plane of an
// [N, C, H, W] tensor is filtered separately.
//
// Index arithmetic, for one axis (the other is the same). Output sample o reads the padded, upsampled
// signal at o * down + t for the taps t = 0 .. k - 1, with weight kernel[k - 1 - t]. Padded position j
// is upsampled position j - pad0, and upsampled position i holds input sample i / up when i is a
// multiple of up and lies in [0, in * up), and zero otherwise. So with s = o * down - pad0, output o
// is the sum over the input samples r with
//     ceil(s / up) <= r <= floor((s + k - 1) / up)   and   0 <= r < in
// of input[r] * kernel[k - 1 - (r * up - s)]. Only taps that hit a real sample are visited.
//
// Two kernels compute this:
// * a generic one (any up, down, pads and kernel size): one thread per output sample, reading input
//   and kernel through the cache;
// * a tiled one for StyleGAN2's cases (4x4 kernel; up 2, down 2, or neither, the same on both axes):
//   a block stages the input window of an output tile and the kernel in shared memory, then every
//   thread computes a few outputs with fully unrolled tap loops.
// Both accumulate in float for half tensors and in the tensor's own precision otherwise.

#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>

#include "ganinv_ops.h"

namespace ganinv {
namespace {

// Floor and ceiling division for a positive divisor and a numerator of either sign.
__host__ __device__ __forceinline__ int floor_div(int a, int b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

__host__ __device__ __forceinline__ int ceil_div(int a, int b) { return -floor_div(-a, b); }

__host__ __device__ __forceinline__ int int_min(int a, int b) { return a < b ? a : b; }

__host__ __device__ __forceinline__ int int_max(int a, int b) { return a > b ? a : b; }

// ---------------------------------------------------------------------------------------------------
// Generic path

// Output sample (oy, ox) of one plane.
template <typename scalar_t, typename acc_t>
__host__ __device__ __forceinline__ acc_t upfirdn2d_point(const scalar_t* __restrict__ plane,
                                                          const scalar_t* __restrict__ kernel,
                                                          const UpFirDn2dParams& p, int oy, int ox) {
  const int sy = oy * p.down_y - p.pad_y0;
  const int sx = ox * p.down_x - p.pad_x0;
  const int ry0 = int_max(ceil_div(sy, p.up_y), 0);
  const int ry1 = int_min(floor_div(sy + p.k_h - 1, p.up_y), p.in_h - 1);
  const int rx0 = int_max(ceil_div(sx, p.up_x), 0);
  const int rx1 = int_min(floor_div(sx + p.k_w - 1, p.up_x), p.in_w - 1);
  acc_t acc = acc_t(0);
  for (int ry = ry0; ry <= ry1; ++ry) {
    const scalar_t* in_row = plane + ry * p.in_w;
    const scalar_t* k_row = kernel + (p.k_h - 1 - (ry * p.up_y - sy)) * p.k_w;
    const int k_last = p.k_w - 1 + sx;  // kernel column of input sample rx is k_last - rx * up_x
    for (int rx = rx0; rx <= rx1; ++rx) {
      acc += static_cast<acc_t>(in_row[rx]) * static_cast<acc_t>(k_row[k_last - rx * p.up_x]);
    }
  }
  return acc;
}

constexpr int kUfdThreads = 256;

// grid.x covers the samples of one output plane, grid.y (and a loop) the planes.
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kUfdThreads)
    upfirdn2d_generic_kernel(scalar_t* __restrict__ out, const scalar_t* __restrict__ x,
                             const scalar_t* __restrict__ kernel, const UpFirDn2dParams p) {
  const int out_plane = p.out_h * p.out_w;
  const unsigned int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= static_cast<unsigned int>(out_plane)) {
    return;
  }
  const int oy = static_cast<int>(idx) / p.out_w;
  const int ox = static_cast<int>(idx) - oy * p.out_w;
  const int64_t in_plane = static_cast<int64_t>(p.in_h) * p.in_w;
  for (int64_t c = blockIdx.y; c < p.planes; c += gridDim.y) {
    const acc_t v = upfirdn2d_point<scalar_t, acc_t>(x + c * in_plane, kernel, p, oy, ox);
    out[c * out_plane + idx] = static_cast<scalar_t>(v);
  }
}

// ---------------------------------------------------------------------------------------------------
// Tiled path

template <int UP, int DOWN, int K, int TILE_W, int TILE_H>
struct TileConfig {
  static constexpr bool kTiled = true;
  static constexpr int kUp = UP;
  static constexpr int kDown = DOWN;
  static constexpr int kK = K;
  static constexpr int kTileW = TILE_W;
  static constexpr int kTileH = TILE_H;
  // The input samples an output tile can touch along one axis: the multiples of UP among
  // (TILE - 1) * DOWN + K consecutive upsampled positions, at most ceil(((TILE - 1) * DOWN + K) / UP).
  static constexpr int kInW = ((TILE_W - 1) * DOWN + K + UP - 1) / UP;
  static constexpr int kInH = ((TILE_H - 1) * DOWN + K + UP - 1) / UP;
  // Taps per axis that can hit a real sample: ceil(K / UP).
  static constexpr int kTaps = (K + UP - 1) / UP;
};

struct GenericConfig {
  static constexpr bool kTiled = false;
};

using TileUp1Down1K4 = TileConfig<1, 1, 4, 32, 32>;  // blurs
using TileUp2Down1K4 = TileConfig<2, 1, 4, 64, 32>;  // 2x upsampling (and the adjoint of 2x down)
using TileUp1Down2K4 = TileConfig<1, 2, 4, 32, 16>;  // 2x downsampling (and the adjoint of 2x up)

// First input row (column) staged for the tile whose first output row (column) is o0.
template <typename Cfg>
__host__ __device__ __forceinline__ int tile_input_origin(int o0, int pad0) {
  return ceil_div(o0 * Cfg::kDown - pad0, Cfg::kUp);
}

// Phase 0 (once per block): the kernel, converted to the accumulation type.
template <typename scalar_t, typename acc_t, typename Cfg>
__host__ __device__ __forceinline__ void tile_load_kernel(acc_t* s_kernel, const scalar_t* __restrict__ kernel,
                                                          int tid, int nthreads) {
  for (int i = tid; i < Cfg::kK * Cfg::kK; i += nthreads) {
    s_kernel[i] = static_cast<acc_t>(kernel[i]);
  }
}

// Phase 1: the input window of output tile (tile_x, tile_y), zero outside the input.
template <typename scalar_t, typename acc_t, typename Cfg>
__host__ __device__ __forceinline__ void tile_load_input(acc_t* s_in, const scalar_t* __restrict__ plane,
                                                         const UpFirDn2dParams& p, int tile_x, int tile_y,
                                                         int tid, int nthreads) {
  const int iy0 = tile_input_origin<Cfg>(tile_y * Cfg::kTileH, p.pad_y0);
  const int ix0 = tile_input_origin<Cfg>(tile_x * Cfg::kTileW, p.pad_x0);
  for (int i = tid; i < Cfg::kInH * Cfg::kInW; i += nthreads) {
    const int r = i / Cfg::kInW;
    const int gy = iy0 + r;
    const int gx = ix0 + (i - r * Cfg::kInW);
    acc_t v = acc_t(0);
    if (gy >= 0 && gy < p.in_h && gx >= 0 && gx < p.in_w) {
      v = static_cast<acc_t>(plane[gy * p.in_w + gx]);
    }
    s_in[i] = v;
  }
}

// Phase 2: the outputs of tile (tile_x, tile_y) from the staged window.
template <typename scalar_t, typename acc_t, typename Cfg>
__host__ __device__ __forceinline__ void tile_compute(scalar_t* __restrict__ out_plane, const acc_t* s_kernel,
                                                      const acc_t* s_in, const UpFirDn2dParams& p,
                                                      int tile_x, int tile_y, int tid, int nthreads) {
  constexpr int K = Cfg::kK;
  constexpr int UP = Cfg::kUp;
  const int oy0 = tile_y * Cfg::kTileH;
  const int ox0 = tile_x * Cfg::kTileW;
  const int iy0 = tile_input_origin<Cfg>(oy0, p.pad_y0);
  const int ix0 = tile_input_origin<Cfg>(ox0, p.pad_x0);
  for (int i = tid; i < Cfg::kTileW * Cfg::kTileH; i += nthreads) {
    const int ly = i / Cfg::kTileW;
    const int oy = oy0 + ly;
    const int ox = ox0 + (i - ly * Cfg::kTileW);
    if (oy >= p.out_h || ox >= p.out_w) {
      continue;
    }
    const int sy = oy * Cfg::kDown - p.pad_y0;
    const int sx = ox * Cfg::kDown - p.pad_x0;
    const int ry = ceil_div(sy, UP);  // first input row under the kernel
    const int rx = ceil_div(sx, UP);
    const int ty0 = ry * UP - sy;  // its tap, in [0, UP)
    const int tx0 = rx * UP - sx;
    const acc_t* win = s_in + (ry - iy0) * Cfg::kInW + (rx - ix0);
    acc_t acc = acc_t(0);
#pragma unroll
    for (int j = 0; j < Cfg::kTaps; ++j) {
      const int ty = ty0 + j * UP;
      if (ty < K) {
#pragma unroll
        for (int k = 0; k < Cfg::kTaps; ++k) {
          const int tx = tx0 + k * UP;
          if (tx < K) {
            acc += win[j * Cfg::kInW + k] * s_kernel[(K - 1 - ty) * K + (K - 1 - tx)];
          }
        }
      }
    }
    out_plane[oy * p.out_w + ox] = static_cast<scalar_t>(acc);
  }
}

// grid.x / grid.y: output tiles, grid.z (and a loop): planes.
template <typename scalar_t, typename acc_t, typename Cfg>
__global__ void __launch_bounds__(kUfdThreads)
    upfirdn2d_tiled_kernel(scalar_t* __restrict__ out, const scalar_t* __restrict__ x,
                           const scalar_t* __restrict__ kernel, const UpFirDn2dParams p) {
  __shared__ acc_t s_kernel[Cfg::kK * Cfg::kK];
  __shared__ acc_t s_in[Cfg::kInH * Cfg::kInW];
  const int tid = threadIdx.x;
  const int nthreads = blockDim.x;
  const int64_t in_plane = static_cast<int64_t>(p.in_h) * p.in_w;
  const int64_t out_plane = static_cast<int64_t>(p.out_h) * p.out_w;
  tile_load_kernel<scalar_t, acc_t, Cfg>(s_kernel, kernel, tid, nthreads);
  for (int64_t c = blockIdx.z; c < p.planes; c += gridDim.z) {
    tile_load_input<scalar_t, acc_t, Cfg>(s_in, x + c * in_plane, p, blockIdx.x, blockIdx.y, tid, nthreads);
    __syncthreads();
    tile_compute<scalar_t, acc_t, Cfg>(out + c * out_plane, s_kernel, s_in, p, blockIdx.x, blockIdx.y, tid,
                                       nthreads);
    __syncthreads();  // the window is overwritten for the next plane
  }
}

// ---------------------------------------------------------------------------------------------------
// Path selection and launch

constexpr int64_t kMaxGridYZ = 65535;

template <typename Cfg>
bool tile_config_applies(const UpFirDn2dParams& p) {
  // Tiles much larger than the output would leave most threads idle; the generic kernel is better there.
  return p.up_x == Cfg::kUp && p.up_y == Cfg::kUp && p.down_x == Cfg::kDown && p.down_y == Cfg::kDown &&
         p.k_h == Cfg::kK && p.k_w == Cfg::kK && 2 * p.out_w >= Cfg::kTileW && 2 * p.out_h >= Cfg::kTileH &&
         (p.out_h + Cfg::kTileH - 1) / Cfg::kTileH <= kMaxGridYZ;
}

// Calls fn with the configuration (a TileConfig or GenericConfig) that handles p.
template <typename Fn>
void with_upfirdn2d_config(const UpFirDn2dParams& p, Fn&& fn) {
  if (tile_config_applies<TileUp1Down1K4>(p)) {
    fn(TileUp1Down1K4{});
  } else if (tile_config_applies<TileUp2Down1K4>(p)) {
    fn(TileUp2Down1K4{});
  } else if (tile_config_applies<TileUp1Down2K4>(p)) {
    fn(TileUp1Down2K4{});
  } else {
    fn(GenericConfig{});
  }
}

}  // namespace

at::Tensor upfirdn2d_cuda(const at::Tensor& x, const at::Tensor& kernel, const UpFirDn2dParams& p) {
  at::Tensor out = at::empty({x.size(0), x.size(1), p.out_h, p.out_w}, x.options());
  if (out.numel() == 0) {
    return out;
  }
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const unsigned int grid_planes = static_cast<unsigned int>(std::min(p.planes, kMaxGridYZ));

  AT_DISPATCH_FLOATING_TYPES_AND_HALF(x.scalar_type(), "ganinv_upfirdn2d", [&] {
    using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
    const scalar_t* x_ptr = x.const_data_ptr<scalar_t>();
    const scalar_t* k_ptr = kernel.const_data_ptr<scalar_t>();
    scalar_t* out_ptr = out.mutable_data_ptr<scalar_t>();
    with_upfirdn2d_config(p, [&](auto cfg) {
      using Cfg = decltype(cfg);
      if constexpr (Cfg::kTiled) {
        const dim3 grid((p.out_w + Cfg::kTileW - 1) / Cfg::kTileW, (p.out_h + Cfg::kTileH - 1) / Cfg::kTileH,
                        grid_planes);
        upfirdn2d_tiled_kernel<scalar_t, acc_t, Cfg><<<grid, kUfdThreads, 0, stream>>>(out_ptr, x_ptr, k_ptr, p);
      } else {
        const int64_t out_plane = static_cast<int64_t>(p.out_h) * p.out_w;
        const dim3 grid(static_cast<unsigned int>((out_plane + kUfdThreads - 1) / kUfdThreads), grid_planes);
        upfirdn2d_generic_kernel<scalar_t, acc_t><<<grid, kUfdThreads, 0, stream>>>(out_ptr, x_ptr, k_ptr, p);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return out;
}

}  // namespace ganinv
