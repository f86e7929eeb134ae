// Python bindings of the ganinv CUDA kernels, with argument checking.
//
// Signatures and semantics are those of ganinv/ops/_reference.py, which the autograd Functions in
// fused_act.py and upfirdn2d.py call interchangeably with this module.

#include <c10/cuda/CUDAGuard.h>
#include <torch/extension.h>

#include <cstdint>

#include "ganinv_ops.h"

namespace {

// Sizes and offsets inside the kernels are computed in int; keep every quantity well inside its range.
constexpr int64_t kMaxExtent = int64_t(1) << 30;

bool is_supported_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf;
}

// x: the tensor whose device and dtype every other argument must share.
void check_input(const at::Tensor& x, const char* op) {
  TORCH_CHECK(x.is_cuda(), op, ": x must be a CUDA tensor, got one on ", x.device());
  TORCH_CHECK(is_supported_dtype(x.scalar_type()), op, ": x must be float32, float64 or float16, got ",
              x.scalar_type());
  TORCH_CHECK(x.is_contiguous(), op, ": x must be contiguous");
}

void check_companion(const at::Tensor& t, const at::Tensor& x, const char* op, const char* name) {
  TORCH_CHECK(t.is_cuda() && t.device() == x.device(), op, ": ", name, " must be on x's device (", x.device(),
              "), got ", t.device());
  TORCH_CHECK(t.scalar_type() == x.scalar_type(), op, ": ", name, " must have x's dtype (", x.scalar_type(),
              "), got ", t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous");
}

int64_t floor_div64(int64_t a, int64_t b) {  // b > 0
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

}  // namespace

at::Tensor fused_bias_act(const at::Tensor& x, const at::Tensor& bias, const at::Tensor& ref, int64_t grad_mode,
                          double alpha, double scale) {
  constexpr const char* op = "ganinv fused_bias_act";
  TORCH_CHECK_VALUE(grad_mode == 0 || grad_mode == 1, op, ": grad_mode must be 0 or 1, got ", grad_mode);
  check_input(x, op);
  TORCH_CHECK(x.dim() >= 2, op, ": x must have shape [N, C, ...] (ndim >= 2), got ", x.sizes());
  // As in the reference, the bias is only used by the forward (grad_mode 0) and ref only by grad_mode 1.
  if (grad_mode == 0 && bias.numel() > 0) {
    check_companion(bias, x, op, "bias");
    TORCH_CHECK(bias.dim() == 1 && bias.size(0) == x.size(1), op, ": bias must have shape [C] = [", x.size(1),
                "] or be empty, got ", bias.sizes());
  }
  if (grad_mode == 1) {
    check_companion(ref, x, op, "ref");
    TORCH_CHECK(ref.sizes() == x.sizes(), op, ": ref must have x's shape ", x.sizes(), " in grad_mode 1, got ",
                ref.sizes());
  }
  const at::cuda::OptionalCUDAGuard device_guard(x.device());
  return ganinv::fused_bias_act_cuda(x, bias, ref, grad_mode, alpha, scale);
}

at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& kernel, int64_t up_x, int64_t up_y, int64_t down_x,
                     int64_t down_y, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0, int64_t pad_y1) {
  constexpr const char* op = "ganinv upfirdn2d";
  check_input(x, op);
  TORCH_CHECK(x.dim() == 4, op, ": x must have shape [N, C, H, W], got ", x.sizes());
  check_companion(kernel, x, op, "kernel");
  TORCH_CHECK(kernel.dim() == 2 && kernel.numel() > 0, op, ": kernel must be a non-empty 2-D tensor, got ",
              kernel.sizes());
  TORCH_CHECK_VALUE(up_x >= 1 && up_y >= 1, op, ": up factors must be >= 1, got (", up_x, ", ", up_y, ")");
  TORCH_CHECK_VALUE(down_x >= 1 && down_y >= 1, op, ": down factors must be >= 1, got (", down_x, ", ", down_y,
                    ")");

  const int64_t in_h = x.size(2), in_w = x.size(3);
  const int64_t k_h = kernel.size(0), k_w = kernel.size(1);
  for (int64_t v : {up_x, up_y, down_x, down_y, k_h, k_w, in_h, in_w, pad_x0 < 0 ? -pad_x0 : pad_x0,
                    pad_x1 < 0 ? -pad_x1 : pad_x1, pad_y0 < 0 ? -pad_y0 : pad_y0, pad_y1 < 0 ? -pad_y1 : pad_y1}) {
    TORCH_CHECK(v < kMaxExtent, op, ": a size, factor or pad is too large (", v, ")");
  }
  const int64_t span_h = in_h * up_y + pad_y0 + pad_y1;  // length of the padded, upsampled signal
  const int64_t span_w = in_w * up_x + pad_x0 + pad_x1;
  TORCH_CHECK(in_h * up_y < kMaxExtent && in_w * up_x < kMaxExtent && span_h < kMaxExtent && span_w < kMaxExtent,
              op, ": the padded, upsampled input is too large (", span_h, " x ", span_w, ")");
  TORCH_CHECK_VALUE(span_h >= k_h && span_w >= k_w, op, ": the padded, upsampled input (", span_h, " x ", span_w,
                    ") is smaller than the kernel (", k_h, " x ", k_w, ")");
  const int64_t out_h = floor_div64(span_h - k_h, down_y) + 1;
  const int64_t out_w = floor_div64(span_w - k_w, down_x) + 1;
  TORCH_CHECK(in_h * in_w < kMaxExtent && out_h * out_w < kMaxExtent, op,
              ": a plane is too large for these kernels (", in_h, " x ", in_w, " -> ", out_h, " x ", out_w, ")");

  ganinv::UpFirDn2dParams p;
  p.planes = x.size(0) * x.size(1);
  p.in_h = static_cast<int>(in_h);
  p.in_w = static_cast<int>(in_w);
  p.out_h = static_cast<int>(out_h);
  p.out_w = static_cast<int>(out_w);
  p.up_x = static_cast<int>(up_x);
  p.up_y = static_cast<int>(up_y);
  p.down_x = static_cast<int>(down_x);
  p.down_y = static_cast<int>(down_y);
  p.pad_x0 = static_cast<int>(pad_x0);
  p.pad_y0 = static_cast<int>(pad_y0);
  p.k_h = static_cast<int>(k_h);
  p.k_w = static_cast<int>(k_w);

  const at::cuda::OptionalCUDAGuard device_guard(x.device());
  return ganinv::upfirdn2d_cuda(x, kernel, p);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "ganinv CUDA kernels: fused_bias_act and upfirdn2d (see ganinv/ops/_reference.py)";
  m.def("fused_bias_act", &fused_bias_act,
        "lrelu(x + bias, alpha) * scale (grad_mode 0), or x * (ref > 0 ? 1 : alpha) * scale (grad_mode 1)",
        py::arg("x"), py::arg("bias"), py::arg("ref"), py::arg("grad_mode"), py::arg("alpha"), py::arg("scale"));
  m.def("upfirdn2d", &upfirdn2d, "upsample (zero insertion), pad (negative crops), FIR-filter, downsample",
        py::arg("x"), py::arg("kernel"), py::arg("up_x"), py::arg("up_y"), py::arg("down_x"), py::arg("down_y"),
        py::arg("pad_x0"), py::arg("pad_x1"), py::arg("pad_y0"), py::arg("pad_y1"));
}
