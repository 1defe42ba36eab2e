"""The matrix products of one tutorial training step alone, NumPy (OpenBLAS) vs PyTorch (MKL): the floor under the
step time of any implementation that uses that library's GEMM.

    python benchmarks/cpu_gemm_floor.py numpy|torch [--masked]

Per step, for 2 LSTM layers (B=32, T=100, H=256; layer 1 has D=1): T recurrent products forward and T backward
per layer ((B, H) @ (H, 4H), or with Keras's per-gate recurrent masks 4 x (B, H) @ (H, H)), and the products over
all timesteps: layer 2's input projection, dW and dx, and dU of both layers ((T*B, 256) x (256, 1024) each).
Prints the median milliseconds of the products of one step.
"""
import statistics
import sys
import time

B, T, H = 32, 100, 256


def main():
    lib, masked = sys.argv[1], "--masked" in sys.argv
    if lib == "numpy":
        import numpy as xp
        rng = xp.random.default_rng(0)
        rand = lambda *s: rng.standard_normal(s, dtype="float32")  # noqa: E731
        mm = xp.matmul
    else:
        import torch as xp
        if __import__("os").environ.get("OMP_NUM_THREADS"):
            xp.set_num_threads(int(__import__("os").environ["OMP_NUM_THREADS"]))
        rand = lambda *s: xp.randn(*s)  # noqa: E731
        mm = xp.matmul
    h, U, U4, h4 = rand(B, H), rand(H, 4 * H), rand(4, H, H), rand(4, B, H)
    X, Z, W = rand(T * B, H), rand(T * B, 4 * H), rand(H, 4 * H)

    def step():
        for _layer in range(2):
            for _t in range(2 * T):   # forward and backward recurrent products
                mm(h4, U4) if masked else mm(h, U)
        mm(X, W)                      # layer 2: input projection
        mm(X.T, Z)                    # layer 2: dW
        mm(Z, W.T)                    # layer 2: dx
        mm(X.T, Z)                    # layer 2: dU
        mm(X.T, Z)                    # layer 1: dU

    step()
    times = []
    for _ in range(8):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    print(f"{lib} {'masked' if masked else 'plain'}: {1000 * statistics.median(times):.1f} ms")


if __name__ == "__main__":
    main()
