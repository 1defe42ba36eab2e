"""Adam exactly as Keras 3 computes it (epsilon outside the bias correction), with optional norm clipping.

    t = iterations + 1
    m <- m + (1 - beta_1) (g - m)
    v <- v + (1 - beta_2) (g^2 - v)
    alpha_t = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)
    w <- w - alpha_t m / (sqrt(v) + epsilon)

clipnorm clips each gradient to that L2 norm (Keras's per-variable clipnorm); global_clipnorm scales all gradients
together when their joint norm exceeds it. See docs/adam.md.
"""
from . import arguments, backend


def clip_by_norm(g, clip):
    xp = backend.array_module(g)
    norm = xp.sqrt((g * g).sum())
    return g * g.dtype.type(clip) / xp.maximum(norm, g.dtype.type(clip))


def clip_by_global_norm(grads, clip):
    xp = backend.array_module(grads[0])
    norm = xp.sqrt(sum((g * g).sum() for g in grads))
    scale = grads[0].dtype.type(clip) / xp.maximum(norm, grads[0].dtype.type(clip))
    return [g * scale for g in grads]


class Adam:
    def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, clipnorm=None,
                 global_clipnorm=None):
        arguments.real("Adam: learning_rate", learning_rate, above=0)
        arguments.real("Adam: beta_1", beta_1, minimum=0, below=1)
        arguments.real("Adam: beta_2", beta_2, minimum=0, below=1)
        arguments.real("Adam: epsilon", epsilon, above=0)
        for name, norm in (("clipnorm", clipnorm), ("global_clipnorm", global_clipnorm)):
            if norm is not None:   # a negative norm would flip the gradient's sign; zero would erase it
                arguments.real(f"Adam: {name}", norm, above=0)
        if clipnorm is not None and global_clipnorm is not None:
            raise ValueError("Adam: give clipnorm or global_clipnorm, not both")
        self.learning_rate, self.beta_1, self.beta_2, self.epsilon = learning_rate, beta_1, beta_2, epsilon
        self.clipnorm, self.global_clipnorm = clipnorm, global_clipnorm
        self.iterations = 0
        self.m, self.v = None, None
        self.scratch = None   # two work buffers per variable, made on the first update (not part of the state)

    def build(self, variables):
        xp = backend.array_module(variables[0].value) if variables else backend.xp()
        self.m = [xp.zeros_like(v.value) for v in variables]
        self.v = [xp.zeros_like(v.value) for v in variables]

    def clip(self, grads):
        if self.clipnorm is not None:
            return [clip_by_norm(g, self.clipnorm) for g in grads]
        if self.global_clipnorm is not None:
            return clip_by_global_norm(grads, self.global_clipnorm)
        return grads

    def apply_gradients(self, grads, variables):
        """One Adam step over ``variables`` (updated in place) with the aligned ``grads``."""
        if self.m is None:
            self.build(variables)
        grads = self.clip(grads)
        dtype = variables[0].value.dtype.type
        t = dtype(self.iterations + 1)
        b1, b2 = dtype(self.beta_1), dtype(self.beta_2)
        alpha = dtype(self.learning_rate) * (1 - b2 ** t) ** dtype(0.5) / (1 - b1 ** t)
        eps = dtype(self.epsilon)
        xp = backend.array_module(variables[0].value)
        if not self.scratch_fits():
            self.scratch = [(xp.empty_like(m), xp.empty_like(m)) for m in self.m]
        for var, g, m, v, (step, denom) in zip(variables, grads, self.m, self.v, self.scratch):
            # m += (g - m) (1 - b1);  v += (g^2 - v) (1 - b2);  w -= alpha_t m / (sqrt(v) + eps)
            # each line in place, through two scratch buffers: the same arithmetic, in the same order, without a
            # fresh temporary per operation (large temporaries cost a page fault per 4 KB)
            xp.subtract(g, m, out=step)
            step *= 1 - b1
            m += step
            xp.multiply(g, g, out=step)
            step -= v
            step *= 1 - b2
            v += step
            xp.multiply(m, alpha, out=step)
            xp.sqrt(v, out=denom)
            denom += eps
            step /= denom
            var.value -= step
        self.iterations += 1

    def scratch_fits(self):
        """The work buffers match m (count, shape, dtype, device): rebuilt after set_state or to_device."""
        return self.scratch is not None and len(self.scratch) == len(self.m) and all(
            type(s) is type(m) and s.shape == m.shape and s.dtype == m.dtype
            for (s, _), m in zip(self.scratch, self.m))

    # -- state for checkpoints and resume ------------------------------------------------------------------------------
    def get_config(self):
        return {"class_name": "Adam", "learning_rate": self.learning_rate, "beta_1": self.beta_1,
                "beta_2": self.beta_2, "epsilon": self.epsilon, "clipnorm": self.clipnorm,
                "global_clipnorm": self.global_clipnorm}

    def get_state(self):
        """m + v as host arrays (``iterations`` is saved separately)."""
        if self.m is None:
            return []
        return [backend.to_numpy(a) for a in self.m + self.v]

    def set_state(self, iterations, arrays, variables):
        self.iterations = int(iterations)
        if not arrays:
            self.m = self.v = None
            return
        n = len(variables)
        if len(arrays) != 2 * n:
            raise ValueError(f"optimizer state has {len(arrays)} arrays, the model needs {2 * n}")
        self.m = [backend.to_device(a) for a in arrays[:n]]
        self.v = [backend.to_device(a) for a in arrays[n:]]


def get(identifier):
    if isinstance(identifier, Adam):
        return identifier
    if identifier == "adam":
        return Adam()
    if isinstance(identifier, dict) and identifier.get("class_name") == "Adam":
        config = {k: v for k, v in identifier.items() if k != "class_name"}
        return Adam(**config)
    raise ValueError(f"unknown optimizer {identifier!r}; expected 'adam' or optimizers.Adam(...)")
