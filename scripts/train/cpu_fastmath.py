"""Float32 matrix products through oneDNN (mkldnn) for CPU builds of PyTorch whose BLAS is the
generic reference one (Debian's python3-torch 1.13: `BLAS_INFO=generic`, ~1.5 GFLOP/s on this
machine's cores; oneDNN is 30x faster). install() patches torch.matmul, Tensor.__matmul__ and
torch.nn.functional.linear for float32 CPU tensors while autograd is off (torch.no_grad); everything else falls back
to the original functions. Results differ from the reference BLAS only by float32 summation
order (relative ~1e-7).
"""
import torch
import torch.nn.functional as F

_orig = {}


def _usable(*ts):
    return not torch.is_grad_enabled() and all(isinstance(t, torch.Tensor) and t.dtype == torch.float32
                                               and t.device.type == "cpu" and t.dim() >= 2 for t in ts)


def _mm2d(a, b):
    """a [M,K] @ b [K,N] -> [M,N]."""
    if a.shape[0] == 0 or b.shape[1] == 0 or a.shape[1] == 0:
        return _orig["matmul"](a, b)
    return torch._C._nn.mkldnn_linear(a.contiguous().to_mkldnn(), b.t().contiguous().to_mkldnn(), None).to_dense()


def matmul(a, b):
    if not _usable(a, b):
        return _orig["matmul"](a, b)
    M, K = a.shape[-2:]
    N = b.shape[-1]
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a3 = a.expand(*batch, M, K).reshape(-1, M, K)
    b3 = b.expand(*batch, K, N).reshape(-1, K, N)
    out = torch.stack([_mm2d(a3[i], b3[i]) for i in range(a3.shape[0])])
    return out.reshape(*batch, M, N)


def linear(x, w, b=None):
    ok = not torch.is_grad_enabled() and all(isinstance(t, torch.Tensor) and t.dtype == torch.float32
                                             and t.device.type == "cpu" for t in (x, w)) \
        and w.dim() == 2 and x.dim() >= 1 and x.numel() > 0
    if not ok:
        return _orig["linear"](x, w, b)
    shape = x.shape
    x2 = x.reshape(-1, shape[-1]).contiguous()
    out = torch._C._nn.mkldnn_linear(x2.to_mkldnn(), w.contiguous().to_mkldnn(), None).to_dense()
    if b is not None:
        out = out + b
    return out.reshape(*shape[:-1], w.shape[0])


def install():
    if _orig or not torch.backends.mkldnn.is_available():
        return
    _orig["matmul"] = torch.matmul
    _orig["tensor_matmul"] = torch.Tensor.__matmul__
    _orig["linear"] = F.linear
    torch.matmul = matmul
    torch.Tensor.__matmul__ = lambda self, other: matmul(self, other)
    F.linear = linear
