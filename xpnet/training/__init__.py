"""The training loop and what it decides on the host.

- ``loop``: blocks of epochs between read-backs, the record, interrupts;
- ``engine``: the interface of the engines that run the blocks (``xpnet.engines``);
- ``lbfgs``: ``solver="lbfgs"``, E_total minimised by L-BFGS through an engine's gradients;
- ``schedules``: the step size of each epoch and scikit-learn's stopping rules;
- ``samples``: the samples, their order in an epoch, the early-stopping split;
- ``sparse``: a sparse matrix as the samples X;
- ``checkpoints``: the model as trained so far, written in the background.
"""
