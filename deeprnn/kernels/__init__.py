"""Fast kernels beside the readable reference: the loops of the recurrent layers, arranged for speed.

The layers in ``deeprnn/layers`` are the reference: one equation a line, a step function and the BPTT loops. A
kernel computes exactly the same loops for the cases it claims, arranged for speed (fused buffers, in-place
operations, other memory layouts), and a test holds it to the reference on random inputs
(``tests/test_fast_paths.py``, ``tests/test_gpu.py``).

A kernel is a module of pure array functions; it knows nothing of layers, ``go_backwards``, ``stateful`` or where
its masks came from (``RNN.forward`` does that bookkeeping once, for every implementation). For a cell with G gate
blocks and state ``(h, ...)``:

    NAME                                              # shown by model.summary()
    unsupported(x, weights) -> None | str             # why this kernel cannot run these arrays (device, dtype)
    forward(xw, U, initial_state, recurrent_mask, ws) -> (hs, final_state, cache)
    backward(dhs, d_final_state, cache, U, ws) -> (dxw, dzh, dU, d_initial_state)

with ``xw`` (T, B, G*H) the time-major input projection x_t W + b (input dropout already applied), ``U`` (H, G*H),
``recurrent_mask`` None or Keras's per-gate masks (G, B, H), ``ws`` a ``workspace.Workspace`` of reusable buffers,
``hs`` (T, B, H) every h_t, ``dhs`` None or the outputs' gradient (T, B, H), ``dxw``/``dzh`` the gradients of the
input projection and of the recurrent pre-activation h_in U (the same array for an LSTM).

What the CPU kernels share (``bptt.py``): their claim (``unsupported``: NumPy floats of one dtype), the chunked
backward loop (``backward_steps``) and the recurrent kernel's gradient (``recurrent_kernel_gradient``, also the
reference loops' dU). A kernel names gate blocks by their letter (``cpu_lstm.GATE_O``, ``cpu_gru.GATE_Z``); G is
always the number of blocks.

A cell with options beyond these arrays passes them as keywords of ``forward``: the layer's ``kernel_options()``
(none by default). The GRU's are ``reset_after`` and ``recurrent_bias`` (b_rec (3H,) of reset_after=True, which
enters as h U + b_rec inside the reset, so it cannot join xw; None without a bias); its ``dzh`` is then the
gradient of h U + b_rec, whose sum over t and B is b_rec's gradient (``GRU.bias_gradient``).

A layer lists the kernels that may run its loops (``LSTM.fused_kernels``) and chooses among them by its
``implementation`` argument; nothing here is selected silently. Under ``dr.set_num_threads(n)`` with n > 1 a CPU
kernel runs in n batch shards, in threads or worker processes (``sharded.py``, ``shard_processes.py``: a kernel
itself, named "cpu_lstm x2 threads", which also offers ``projected_forward``/``projected_backward``: the input
projection and its gradients in the shards too, which ``RNN`` uses where the layer's projection is its own).

``cpu_step.py`` is of another kind: not one layer's sequence loops but one generated token through a whole served
model (embedding, recurrent layers, head) and its sampler, fused for a batch of one. It takes the weights as arrays
in Keras's layouts (``pipeline/stepping.fused_step`` reads them from a model and says why where it cannot), and
generation chooses it visibly, beside its reference, the stateful twin.
"""
