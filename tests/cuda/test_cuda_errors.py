"""Bad inputs get the same errors on "cuda" as on every other backend.

The test classes of tests/test_kernels_errors.py run here unchanged, with their
``ops`` fixture bound to backend "cuda" (NumPy inputs); the tests below give
device arrays the same treatment.
"""

import numpy as np
import pytest

import kernels
from cudatests import cuda_ops, is_device
from test_kernels_errors import TestDtypes, TestLayouts, TestNames, TestOut, TestShapes  # noqa: F401

cuda = cuda_ops()


@pytest.fixture
def ops():
    return cuda


@pytest.fixture(scope="module")
def ref():
    return kernels.get_backend("numpy")


def same_error(call_ref, call_cuda):
    """Both calls raise the same exception type with the same message."""
    with pytest.raises((ValueError, TypeError)) as want:
        call_ref()
    with pytest.raises(want.type) as got:
        call_cuda()
    assert str(got.value) == str(want.value)


def dev(x):
    return cuda.asarray(np.asarray(x))


class TestDeviceInputs:
    def test_wrong_ndim(self, ref):
        same_error(lambda: ref.activation_forward(np.zeros(3), "relu"),
                   lambda: cuda.activation_forward(dev(np.zeros(3)), "relu"))
        same_error(lambda: ref.dot(np.ones((3, 1)), np.ones(3)),
                   lambda: cuda.dot(dev(np.ones((3, 1))), dev(np.ones(3))))

    def test_wrong_dtype(self, ref):
        Z = np.zeros((2, 2), dtype=np.int64)
        same_error(lambda: ref.activation_forward(Z, "relu"), lambda: cuda.activation_forward(dev(Z), "relu"))

    def test_mixed_dtypes(self, ref):
        A_prev, W, b = np.zeros((3, 5)), np.zeros((4, 3), np.float32), np.zeros((4, 1))
        same_error(lambda: ref.linear_forward(A_prev, W, b),
                   lambda: cuda.linear_forward(dev(A_prev), dev(W), b))

    def test_shapes(self, ref):
        A_prev, W, b = np.zeros((3, 5)), np.zeros((4, 3)), np.zeros((4, 1))
        same_error(lambda: ref.linear_forward(A_prev.T, W, b),
                   lambda: cuda.linear_forward(dev(A_prev.T), dev(W), dev(b)))
        same_error(lambda: ref.linear_backward(np.zeros((3, 5)), A_prev, W),
                   lambda: cuda.linear_backward(dev(np.zeros((3, 5))), dev(A_prev), dev(W)))
        same_error(lambda: ref.cross_entropy(np.zeros((1, 0)), np.zeros((1, 0))),
                   lambda: cuda.cross_entropy(dev(np.zeros((1, 0))), dev(np.zeros((1, 0)))))

    def test_strided_device_view(self):
        wide = dev(np.zeros((4, 6)))
        with pytest.raises(ValueError, match="Z is a strided view of a device array.*C-contiguous"):
            cuda.activation_forward(wide[:, ::2], "relu")


class TestDeviceOut:
    def test_wrong_shape_and_dtype(self, ref):
        A_prev, W, b = np.zeros((3, 5)), np.zeros((4, 3)), np.zeros((4, 1))
        same_error(lambda: ref.linear_forward(A_prev, W, b, out=np.empty((5, 4))),
                   lambda: cuda.linear_forward(A_prev, W, b, out=cuda.empty((5, 4), np.float64)))
        same_error(lambda: ref.linear_forward(A_prev, W, b, out=np.empty((4, 5), np.float32)),
                   lambda: cuda.linear_forward(A_prev, W, b, out=cuda.empty((4, 5), np.float32)))
        same_error(lambda: ref.cross_entropy(np.full((1, 2), 0.5), np.ones((1, 2)), out=np.empty((), np.float32)),
                   lambda: cuda.cross_entropy(np.full((1, 2), 0.5), np.ones((1, 2)), out=cuda.empty((), np.float32)))

    def test_not_contiguous(self):
        out = cuda.empty((4, 10), np.float64)[:, ::2]
        with pytest.raises(ValueError, match="out must be C-contiguous"):
            cuda.activation_forward(np.zeros((4, 5)), "relu", out=out)

    def test_overlapping_an_input(self):
        A_prev = dev(np.zeros((3, 3)))
        with pytest.raises(ValueError, match="overlaps the input A_prev"):
            cuda.linear_forward(A_prev, dev(np.zeros((3, 3))), dev(np.zeros((3, 1))), out=A_prev)
        flat = dev(np.zeros(12))  # input and out shifted by 2 cells
        with pytest.raises(ValueError, match="overlaps the input Z"):
            cuda.activation_forward(flat[:10].reshape(2, 5), "relu", out=flat[2:].reshape(2, 5))
        with pytest.raises(ValueError, match="overlaps the input grad"):
            cuda.gradient_step(flat[:4].reshape(2, 2), flat[1:5].reshape(2, 2), 0.1)
        p = dev(np.ones((2, 2)))  # the very same array: elementwise, allowed
        assert cuda.gradient_step(p, p, 0.5) is p
        np.testing.assert_array_equal(cuda.to_host(p), 0.5)

    def test_outputs_overlapping_each_other(self):
        Z = cuda.empty((4, 5), np.float64)
        with pytest.raises(ValueError, match="overlaps"):
            cuda.linear_activation_forward(np.zeros((3, 5)), np.zeros((4, 3)), np.zeros((4, 1)), "relu",
                                           out=(Z, Z))

    def test_in_place_elementwise_is_allowed(self):
        Z = dev([[-1.0, 2.0]])
        assert cuda.activation_forward(Z, "relu", out=Z) is Z
        assert is_device(Z)
        np.testing.assert_array_equal(cuda.to_host(Z), [[0.0, 2.0]])

    def test_gradient_step_needs_an_array(self):
        with pytest.raises(TypeError, match="param must be a NumPy array or a CUDA device array"):
            cuda.gradient_step([[1.0, 2.0]], np.ones((1, 2)), 0.1)
        with pytest.raises(TypeError, match="param has dtype int64"):
            cuda.gradient_step(dev(np.zeros((1, 2), np.int64)), np.ones((1, 2)), 0.1)
