"""Adam and AdamW exactly as Keras 3 computes them (epsilon outside the bias correction), with optional norm
clipping, decoupled weight decay and an exponential moving average (EMA) of the weights.

One update, in Keras's order (``BaseOptimizer._backend_apply_gradients``):

    g <- clip(g)                                          clipnorm / global_clipnorm
    w <- w - w * weight_decay * lr                        weight_decay (AdamW), before the Adam step
    t = iterations + 1
    m <- m + (1 - beta_1) (g - m)
    v <- v + (1 - beta_2) (g^2 - v)
    alpha_t = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)
    w <- w - alpha_t m / (sqrt(v) + epsilon)
    a <- mu a + (1 - mu) w,  mu = 0 at the first update   use_ema, mu = ema_momentum
    w <- a every ema_overwrite_frequency updates           ema_overwrite_frequency
    iterations <- iterations + 1

clipnorm clips each gradient to that L2 norm (Keras's per-variable clipnorm); global_clipnorm scales all gradients
together when their joint norm exceeds it. The state is ``optimizer.variables`` (Keras's name): m for every trainable
variable, then v, then the averages a when use_ema, plus the integer ``iterations``. See docs/adam.md.
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
    """Keras's ``keras.optimizers.Adam`` (its defaults), with Keras's ``weight_decay``, ``use_ema``,
    ``ema_momentum`` and ``ema_overwrite_frequency`` arguments of every optimizer."""

    def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None, clipnorm=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None):
        cls = type(self).__name__
        arguments.real(f"{cls}: learning_rate", learning_rate, above=0)
        arguments.real(f"{cls}: beta_1", beta_1, minimum=0, below=1)
        arguments.real(f"{cls}: beta_2", beta_2, minimum=0, below=1)
        arguments.real(f"{cls}: epsilon", epsilon, above=0)
        if weight_decay is not None:
            arguments.real(f"{cls}: weight_decay", weight_decay, minimum=0)
        for name, norm in (("clipnorm", clipnorm), ("global_clipnorm", global_clipnorm)):
            if norm is not None:   # a negative norm would flip the gradient's sign; zero would erase it
                arguments.real(f"{cls}: {name}", norm, above=0)
        if clipnorm is not None and global_clipnorm is not None:
            raise ValueError(f"{cls}: give clipnorm or global_clipnorm, not both")
        if not isinstance(use_ema, bool):
            raise ValueError(f"{cls}: use_ema must be True or False, got {use_ema!r}")
        arguments.real(f"{cls}: ema_momentum", ema_momentum, minimum=0, maximum=1)
        if ema_overwrite_frequency is not None:
            arguments.integer(f"{cls}: ema_overwrite_frequency", ema_overwrite_frequency, minimum=1)
        self.learning_rate, self.beta_1, self.beta_2, self.epsilon = learning_rate, beta_1, beta_2, epsilon
        self.weight_decay = weight_decay
        self.clipnorm, self.global_clipnorm = clipnorm, global_clipnorm
        self.use_ema, self.ema_momentum = use_ema, ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.iterations = 0
        self.m, self.v = None, None
        self.averages = None        # use_ema: the moving average of every trainable variable
        self.averages_swapped = False   # swap_averages: the model holds the averages, ``averages`` the weights
        self.scratch = None   # two work buffers per variable, made on the first update (not part of the state)

    def build(self, variables):
        xp = backend.array_module(variables[0].value) if variables else backend.xp()
        self.m = [xp.zeros_like(v.value) for v in variables]
        self.v = [xp.zeros_like(v.value) for v in variables]
        # Keras starts the averages at zero; the first update's momentum is 0, so they become the weights then
        self.averages = [xp.zeros_like(v.value) for v in variables] if self.use_ema else None

    @property
    def variables(self):
        """The optimizer's state arrays, Keras's ``optimizer.variables`` less its scalars: m for every trainable
        variable, then v, then (use_ema) the averages. Empty before the first update. ``iterations`` is apart."""
        if self.m is None:
            return []
        return self.m + self.v + (self.averages or [])

    @property
    def slots(self):
        """Arrays of state per trainable variable: m and v, and the average with use_ema."""
        return 3 if self.use_ema else 2

    def clip(self, grads):
        if self.clipnorm is not None:
            return [clip_by_norm(g, self.clipnorm) for g in grads]
        if self.global_clipnorm is not None:
            return clip_by_global_norm(grads, self.global_clipnorm)
        return grads

    def apply_gradients(self, grads, variables):
        """One update over ``variables`` (updated in place) with the aligned ``grads``, in Keras's order: clip,
        weight decay, the Adam step, the moving average (use_ema)."""
        if self.averages_swapped:
            raise ValueError(f"{type(self).__name__}: the model holds the averaged weights (swap_averages); swap "
                             "them back before training")
        if self.m is None:
            self.build(variables)
        grads = self.clip(grads)
        dtype = variables[0].value.dtype.type
        xp = backend.array_module(variables[0].value)
        if not self.scratch_fits():
            self.scratch = [(xp.empty_like(m), xp.empty_like(m)) for m in self.m]
        if self.weight_decay:
            self.decay_weights(variables, dtype)
        t = dtype(self.iterations + 1)
        b1, b2 = dtype(self.beta_1), dtype(self.beta_2)
        alpha = dtype(self.learning_rate) * (1 - b2 ** t) ** dtype(0.5) / (1 - b1 ** t)
        eps = dtype(self.epsilon)
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
        if self.use_ema:
            self.update_averages(variables, dtype)
            if self.ema_overwrite_frequency and (self.iterations + 1) % self.ema_overwrite_frequency == 0:
                for var, average in zip(variables, self.averages):
                    xp.copyto(var.value, average)
        self.iterations += 1

    def decay_weights(self, variables, dtype):
        """Decoupled weight decay (Loshchilov & Hutter; Keras's ``_apply_weight_decay``), before the Adam step and
        independent of the gradient: w <- w - w * weight_decay * lr, every trainable variable, biases included."""
        wd, lr = dtype(self.weight_decay), dtype(self.learning_rate)
        for var, (step, _) in zip(variables, self.scratch):
            backend.array_module(step).multiply(var.value, wd, out=step)   # w - (w * wd) * lr, Keras's order
            step *= lr
            var.value -= step

    def update_averages(self, variables, dtype):
        """a <- mu a + (1 - mu) w after the step, mu = ema_momentum (0 at the first update, so a starts at w)."""
        mu = dtype(self.ema_momentum) if self.iterations else dtype(0)
        for var, average, (step, _) in zip(variables, self.averages, self.scratch):
            average *= mu
            backend.array_module(step).multiply(var.value, 1 - mu, out=step)
            average += step

    def finalize_variable_values(self, variables):
        """Keras's end of ``fit`` with use_ema: the model's trainable ``variables`` take the averaged values (no-op
        without use_ema or before any update). When the averages are swapped in already, they stay."""
        if not self.use_ema or self.averages is None:
            return
        xp = backend.array_module(self.averages[0]) if self.averages else backend.xp()
        for var, average in zip(variables, self.averages):
            if self.averages_swapped:
                xp.copyto(average, var.value)
            else:
                xp.copyto(var.value, average)
        self.averages_swapped = False

    def swap_averages(self, variables):
        """Exchange the model's trainable ``variables`` with their averages (Keras's ``SwapEMAWeights``): called
        once, the model evaluates and saves with the averaged weights; called again, the trained weights are back.
        ``averages_swapped`` says which the model holds."""
        if not self.use_ema or self.averages is None:
            raise ValueError(f"{type(self).__name__}: no averaged weights to swap in (use_ema=True and at least one "
                             "update are needed)")
        if len(variables) != len(self.averages):
            raise ValueError(f"{type(self).__name__}: {len(variables)} variables to swap, the optimizer averages "
                             f"{len(self.averages)}")
        for index, var in enumerate(variables):
            var.value, self.averages[index] = self.averages[index], var.value
        self.averages_swapped = not self.averages_swapped

    def scratch_fits(self):
        """The work buffers match m (count, shape, dtype, device): rebuilt after set_state or to_device."""
        return self.scratch is not None and len(self.scratch) == len(self.m) and all(
            type(s) is type(m) and s.shape == m.shape and s.dtype == m.dtype
            for (s, _), m in zip(self.scratch, self.m))

    # -- state for checkpoints and resume ------------------------------------------------------------------------------
    def get_config(self):
        return {"class_name": type(self).__name__, "learning_rate": self.learning_rate, "beta_1": self.beta_1,
                "beta_2": self.beta_2, "epsilon": self.epsilon, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm, "use_ema": self.use_ema,
                "ema_momentum": self.ema_momentum, "ema_overwrite_frequency": self.ema_overwrite_frequency}

    def get_state(self):
        """``variables`` as host arrays (``iterations`` is saved separately). Swapped averages are saved as the
        model holds them; the ``SwapEMAWeights`` callback keeps ``averages_swapped`` with a backup."""
        return [backend.to_numpy(a) for a in self.variables]

    def set_state(self, iterations, arrays, variables):
        """The state ``get_state`` gave, for the trainable ``variables``: ``slots`` arrays per variable."""
        self.iterations = int(iterations)
        if not arrays:
            self.m = self.v = self.averages = None
            return
        n = len(variables)
        if len(arrays) != self.slots * n:
            ema = "with" if self.use_ema else "without"
            raise ValueError(f"optimizer state has {len(arrays)} arrays, {type(self).__name__} {ema} use_ema needs "
                             f"{self.slots} per trainable weight, {self.slots * n}")
        self.unpack([backend.to_device(a) for a in arrays], n)

    def unpack(self, arrays, n):
        """``variables``'s order, m then v then the averages, back into the slots (n trainable variables)."""
        self.m, self.v = arrays[:n], arrays[n:2 * n]
        self.averages = arrays[2 * n:] if self.use_ema else None

    def to_device(self):
        """Move the state to the current backend device."""
        if self.m is not None:
            self.unpack([backend.to_device(backend.to_numpy(a)) for a in self.variables], len(self.m))


class AdamW(Adam):
    """Keras's ``keras.optimizers.AdamW``: Adam with decoupled weight decay, ``weight_decay=0.004`` by default
    (w <- w - w * weight_decay * lr before each Adam step; see ``Adam.decay_weights``)."""

    def __init__(self, learning_rate=1e-3, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        if weight_decay is None:
            raise ValueError("AdamW: weight_decay must be a float, got None")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         weight_decay=weight_decay, **kwargs)


OPTIMIZERS = {"adam": Adam, "adamw": AdamW}


def get(identifier):
    """An optimizer from an instance, a name ('adam', 'adamw') or a saved config ``{"class_name": ..., ...}``."""
    if isinstance(identifier, Adam):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in OPTIMIZERS:
        return OPTIMIZERS[identifier.lower()]()
    if isinstance(identifier, dict) and str(identifier.get("class_name", "")).lower() in OPTIMIZERS:
        config = {k: v for k, v in identifier.items() if k != "class_name"}
        return OPTIMIZERS[identifier["class_name"].lower()](**config)
    raise ValueError(f"unknown optimizer {identifier!r}; expected 'adam', 'adamw' or optimizers.Adam(...)")
