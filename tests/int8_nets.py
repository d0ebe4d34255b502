"""Small networks the int8 tests quantize: shared by test_int8.py and test_int8_choice.py (fixtures in conftest)."""

import torch
from torch import nn

NAMES = [str(i) for i in range(10)]


class Net(nn.Module):
    """Two convs and a classifier: small enough to quantize in a second, predictions that vary with the input."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv2(torch.relu(self.conv1(x)))).amax((2, 3)))
