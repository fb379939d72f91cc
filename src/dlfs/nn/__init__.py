"""Neural-network building blocks: layers, activations, losses, initialisation, regularisation
and normalisation.

Each concept has one module (the topic that writes it in brackets): ``layers`` (06: Parameter,
Layer, Linear, Sequential, Flatten), ``forward`` (05), ``init`` (05), ``activations`` (07),
``losses`` (08), ``regularization`` (09: L2, dropout, early stopping), ``batchnorm`` (09 and
16: BatchNorm1d, BatchNorm2d), ``normalization`` (16: LayerNorm, GroupNorm, InstanceNorm2d,
RMSNorm), ``perceptron`` (04). The stable softmax family comes from ``dlfs.numerics`` (02).

Public names are imported on first use::

    from dlfs.nn import Linear, ReLU, Sequential, CrossEntropyLoss
    model = Sequential(Linear.from_weights(W1, b1), ReLU(), Linear.from_weights(W2, b2))
"""

from dlfs.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "dlfs.nn.layers": ["Parameter", "Layer", "Linear", "Sequential", "Flatten", "linear_backward"],
    "dlfs.nn.forward": ["linear_forward", "mlp_forward"],
    "dlfs.nn.init": ["calculate_fans", "calculate_gain", "xavier_uniform", "xavier_normal",
                     "kaiming_uniform", "kaiming_normal", "lecun_normal"],
    "dlfs.nn.activations": [
        "relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "elu", "elu_backward",
        "gelu", "gelu_backward", "silu", "silu_backward", "sigmoid", "sigmoid_backward",
        "tanh", "tanh_backward", "softmax_backward", "log_softmax_backward", "dead_relu_fraction",
        "ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax",
    ],
    "dlfs.numerics": ["logsumexp", "softmax", "log_softmax"],
    "dlfs.nn.losses": [
        "mse_loss", "l1_loss", "huber_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
        "cross_entropy", "nll_loss", "Loss", "MSELoss", "L1Loss", "HuberLoss", "BCELoss",
        "BCEWithLogitsLoss", "CrossEntropyLoss", "NLLLoss",
    ],
    "dlfs.nn.regularization": ["l2_penalty", "add_l2_grad", "Dropout", "EarlyStopping"],
    "dlfs.nn.batchnorm": ["BatchNormBase", "BatchNorm1d", "BatchNorm2d"],
    "dlfs.nn.normalization": ["normalize", "normalize_backward", "LayerNorm", "GroupNorm",
                              "InstanceNorm2d", "RMSNorm"],
    "dlfs.nn.perceptron": ["Perceptron", "LogisticUnit"],
    "dlfs.nn.embedding": ["Embedding"],
})
