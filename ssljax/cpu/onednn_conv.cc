// 2-D convolutions on oneDNN, as XLA FFI custom calls for JAX on the CPU.
//
// Three handlers, one per pass of an NHWC / HWIO float32 convolution without
// dilation or feature groups (ssljax/cpu/onednn.py wraps them in a
// jax.custom_vjp):
//   ssljax_conv_fwd(x[N,H,W,C], w[KH,KW,C,O])       -> y[N,OH,OW,O]
//   ssljax_conv_bwd_data(g[N,OH,OW,O], w)           -> dx[N,H,W,C]
//   ssljax_conv_bwd_weights(x, g)                   -> dw[KH,KW,C,O]
// Attributes: strides = [sh, sw], padding = [top, bottom, left, right].
//
// Activations stay in NHWC (XLA's row-major layout of [N,H,W,C]); oneDNN
// chooses the weight layout (format_tag::any) and the weights are reordered
// from / to HWIO around each call (at most a few MB). Primitives are built
// once per shape and kept in a cache. oneDNN runs on its own OpenMP threads.
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

enum class Pass : int64_t { kFwd = 0, kBwdData = 1, kBwdWeights = 2 };

struct Shape {
  int64_t n, h, w, c, kh, kw, o, oh, ow, sh, sw, pt, pb, pl, pr;
  std::string Key(Pass pass) const {
    std::string k = std::to_string(static_cast<int64_t>(pass));
    for (int64_t v : {n, h, w, c, kh, kw, o, oh, ow, sh, sw, pt, pb, pl, pr}) {
      k += ',' + std::to_string(v);
    }
    return k;
  }
};

dnnl::engine& Engine() {
  static dnnl::engine* eng = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *eng;
}

// One pass of one shape: the primitive and the weight reorder around it.
struct Plan {
  dnnl::primitive prim;
  memory::desc src, weights, dst;          // what the primitive was built with
  memory::desc user_weights;               // HWIO
  bool reorder_weights = false;
  dnnl::reorder weights_reorder;           // user -> prim (fwd, bwd data) or prim -> user
  size_t scratch_bytes = 0;
};

std::mutex& CacheMutex() {
  static std::mutex* mu = new std::mutex;
  return *mu;
}
std::unordered_map<std::string, std::shared_ptr<Plan>>& Cache() {
  static auto* cache = new std::unordered_map<std::string, std::shared_ptr<Plan>>;
  return *cache;
}

std::shared_ptr<Plan> MakePlan(const Shape& s, Pass pass) {
  dnnl::engine& eng = Engine();
  memory::dims src_dims = {s.n, s.c, s.h, s.w};
  memory::dims w_dims = {s.o, s.c, s.kh, s.kw};
  memory::dims dst_dims = {s.n, s.o, s.oh, s.ow};
  memory::dims strides = {s.sh, s.sw};
  memory::dims pad_l = {s.pt, s.pl};
  memory::dims pad_r = {s.pb, s.pr};
  memory::desc src_md(src_dims, dt::f32, tag::nhwc);
  memory::desc dst_md(dst_dims, dt::f32, tag::nhwc);
  memory::desc w_any(w_dims, dt::f32, tag::any);
  auto plan = std::make_shared<Plan>();
  plan->user_weights = memory::desc(w_dims, dt::f32, tag::hwio);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::library);
  auto fwd_pd = dnnl::convolution_forward::primitive_desc(
      eng, dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
      src_md, w_any, dst_md, strides, pad_l, pad_r, attr);
  memory::desc prim_w;
  if (pass == Pass::kFwd) {
    plan->prim = dnnl::convolution_forward(fwd_pd);
    prim_w = fwd_pd.weights_desc();
  } else if (pass == Pass::kBwdData) {
    auto pd = dnnl::convolution_backward_data::primitive_desc(
        eng, dnnl::algorithm::convolution_direct, src_md, w_any, dst_md,
        strides, pad_l, pad_r, fwd_pd, attr);
    plan->prim = dnnl::convolution_backward_data(pd);
    prim_w = pd.weights_desc();
  } else {
    auto pd = dnnl::convolution_backward_weights::primitive_desc(
        eng, dnnl::algorithm::convolution_direct, src_md, w_any, dst_md,
        strides, pad_l, pad_r, fwd_pd, attr);
    plan->prim = dnnl::convolution_backward_weights(pd);
    prim_w = pd.diff_weights_desc();
  }
  plan->src = src_md;
  plan->dst = dst_md;
  plan->weights = prim_w;
  plan->reorder_weights = prim_w != plan->user_weights;
  if (plan->reorder_weights) {
    if (pass == Pass::kBwdWeights) {
      plan->weights_reorder = dnnl::reorder(
          dnnl::reorder::primitive_desc(eng, prim_w, eng, plan->user_weights));
    } else {
      plan->weights_reorder = dnnl::reorder(
          dnnl::reorder::primitive_desc(eng, plan->user_weights, eng, prim_w));
    }
  }
  return plan;
}

std::shared_ptr<Plan> GetPlan(const Shape& s, Pass pass) {
  const std::string key = s.Key(pass);
  {
    std::lock_guard<std::mutex> lock(CacheMutex());
    auto it = Cache().find(key);
    if (it != Cache().end()) return it->second;
  }
  std::shared_ptr<Plan> plan = MakePlan(s, pass);
  std::lock_guard<std::mutex> lock(CacheMutex());
  return Cache().emplace(key, plan).first->second;
}

ffi::Error ShapeFrom(ffi::Span<const int64_t> x_dims,
                     ffi::Span<const int64_t> w_dims,
                     ffi::Span<const int64_t> y_dims,
                     ffi::Span<const int64_t> strides,
                     ffi::Span<const int64_t> padding, Shape* s) {
  if (x_dims.size() != 4 || w_dims.size() != 4 || y_dims.size() != 4) {
    return ffi::Error::InvalidArgument(
        "ssljax oneDNN convolution: expected rank-4 NHWC inputs and an HWIO kernel");
  }
  if (strides.size() != 2 || padding.size() != 4) {
    return ffi::Error::InvalidArgument(
        "ssljax oneDNN convolution: strides must have 2 entries and padding 4");
  }
  *s = Shape{x_dims[0], x_dims[1], x_dims[2], x_dims[3], w_dims[0], w_dims[1],
             w_dims[3], y_dims[1], y_dims[2], strides[0], strides[1],
             padding[0], padding[1], padding[2], padding[3]};
  if (w_dims[2] != s->c || y_dims[3] != s->o || y_dims[0] != s->n) {
    return ffi::Error::InvalidArgument(
        "ssljax oneDNN convolution: input, kernel and output shapes disagree");
  }
  return ffi::Error::Success();
}

template <typename F>
ffi::Error Guarded(F&& f) {
  try {
    return f();
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("oneDNN: ") + e.what());
  } catch (const std::exception& e) {
    return ffi::Error::Internal(std::string("ssljax oneDNN convolution: ") + e.what());
  }
}

// Runs `plan` with the weights in HWIO at `user_w`; `weights_are_output`
// for the backward-weights pass.
// One oneDNN call at a time: each already uses every core (OpenMP), and
// concurrent OpenMP teams started from several XLA threads (one per device
// in a multi-device CPU run) deadlocked in libgomp.
std::mutex& RunMutex() {
  static std::mutex* mu = new std::mutex;
  return *mu;
}

void Run(Plan& plan, void* src, void* user_w, void* dst, int src_arg,
         int w_arg, int dst_arg, bool weights_are_output) {
  std::lock_guard<std::mutex> lock(RunMutex());
  dnnl::engine& eng = Engine();
  dnnl::stream stream(eng);
  memory src_m(plan.src, eng, src);
  memory dst_m(plan.dst, eng, dst);
  memory user_w_m(plan.user_weights, eng, user_w);
  memory w_m = user_w_m;
  if (plan.reorder_weights) {
    w_m = memory(plan.weights, eng);
    if (!weights_are_output) plan.weights_reorder.execute(stream, user_w_m, w_m);
  }
  plan.prim.execute(stream, {{src_arg, src_m}, {w_arg, w_m}, {dst_arg, dst_m}});
  if (plan.reorder_weights && weights_are_output) {
    plan.weights_reorder.execute(stream, w_m, user_w_m);
  }
  stream.wait();
}

// The three passes differ only in which of (input, kernel, output) XLA
// hands over as the result and in oneDNN's names for the arguments.
struct Operand {
  ffi::Span<const int64_t> dims;
  void* data;
};

ffi::Error Execute(Pass pass, Operand src, Operand weights, Operand dst,
                   ffi::Span<const int64_t> strides,
                   ffi::Span<const int64_t> padding) {
  static constexpr int kArgs[3][3] = {
      {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST},
      {DNNL_ARG_DIFF_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_DST},
      {DNNL_ARG_SRC, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_DST}};
  return Guarded([&]() -> ffi::Error {
    Shape s;
    ffi::Error err = ShapeFrom(src.dims, weights.dims, dst.dims, strides, padding, &s);
    if (err.failure()) return err;
    const int* args = kArgs[static_cast<int>(pass)];
    Run(*GetPlan(s, pass), src.data, weights.data, dst.data, args[0], args[1],
        args[2], pass == Pass::kBwdWeights);
    return ffi::Error::Success();
  });
}

ffi::Error ConvFwdImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w,
                       ffi::ResultBuffer<ffi::F32> y,
                       ffi::Span<const int64_t> strides,
                       ffi::Span<const int64_t> padding) {
  return Execute(Pass::kFwd, {x.dimensions(), x.untyped_data()},
                 {w.dimensions(), w.untyped_data()},
                 {y->dimensions(), y->untyped_data()}, strides, padding);
}

ffi::Error ConvBwdDataImpl(ffi::Buffer<ffi::F32> g, ffi::Buffer<ffi::F32> w,
                           ffi::ResultBuffer<ffi::F32> dx,
                           ffi::Span<const int64_t> strides,
                           ffi::Span<const int64_t> padding) {
  return Execute(Pass::kBwdData, {dx->dimensions(), dx->untyped_data()},
                 {w.dimensions(), w.untyped_data()},
                 {g.dimensions(), g.untyped_data()}, strides, padding);
}

ffi::Error ConvBwdWeightsImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> g,
                              ffi::ResultBuffer<ffi::F32> dw,
                              ffi::Span<const int64_t> strides,
                              ffi::Span<const int64_t> padding) {
  return Execute(Pass::kBwdWeights, {x.dimensions(), x.untyped_data()},
                 {dw->dimensions(), dw->untyped_data()},
                 {g.dimensions(), g.untyped_data()}, strides, padding);
}

}  // namespace

#define SSLJAX_CONV_BINDING                          \
  ffi::Ffi::Bind()                                   \
      .Arg<ffi::Buffer<ffi::F32>>()                  \
      .Arg<ffi::Buffer<ffi::F32>>()                  \
      .Ret<ffi::Buffer<ffi::F32>>()                  \
      .Attr<ffi::Span<const int64_t>>("strides")     \
      .Attr<ffi::Span<const int64_t>>("padding")

XLA_FFI_DEFINE_HANDLER_SYMBOL(SsljaxConvFwd, ConvFwdImpl, SSLJAX_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(SsljaxConvBwdData, ConvBwdDataImpl, SSLJAX_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(SsljaxConvBwdWeights, ConvBwdWeightsImpl, SSLJAX_CONV_BINDING);

extern "C" int ssljax_onednn_version() {
  const dnnl_version_t* v = dnnl_version();
  return v->major * 10000 + v->minor * 100 + v->patch;
}
