"""Every layer of the tutorial's deep LSTM and its siblings, forward and backward by hand."""
from .base import Backward, Layer, Variable
from .conditioning import ConditionedEmbedding
from .core import Activation, Dense, Input
from .dropout import Dropout
from .embedding import Embedding
from .gru import GRU
from .lstm import LSTM
from .normalization import BatchNormalization
from .recurrent import RNN
from .simple_rnn import SimpleRNN
from .step_counter import StepCounterEmbedding

__all__ = ["Backward", "Layer", "Variable", "Activation", "Dense", "Input", "Dropout", "Embedding", "GRU", "LSTM",
           "BatchNormalization", "RNN", "SimpleRNN", "StepCounterEmbedding", "ConditionedEmbedding"]
