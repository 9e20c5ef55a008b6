"""The derivation, and nothing else: functions over an array namespace ``xp``.

- ``activations``: f, and Δ ⊙ f′ written from A;
- ``losses``: E and the output delta Δ⁽ᴸ⁾ of each (loss, output activation) pair;
- ``optimizers``: update rules as pure (init, update) pairs;
- ``init``: the initial weights, drawn from a host generator;
- ``backprop``: forward, backward and the gradient sums;
- ``step``: one step, one epoch, and early stopping's choice of the best parameters;
- ``scores``: accuracy and R², on the device.

Nothing here validates, reads files, starts threads or names an engine or a backend
library: the layers above do.
"""
