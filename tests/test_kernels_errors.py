"""Bad inputs get a clear ValueError/TypeError on every backend, before any
compiled loop runs; odd-but-valid layouts (Fortran order, strided views,
array-likes) are accepted; ``out=`` is honoured."""

import numpy as np
import pytest

import kernels
from conftest import ALL_CPU


@pytest.fixture(params=ALL_CPU)
def ops(request):
    return kernels.get_backend(request.param)


def layer(n=4, k=3, m=5, dtype=np.float64):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((k, m)).astype(dtype), rng.standard_normal((n, k)).astype(dtype),
            rng.standard_normal((n, 1)).astype(dtype))


def test_unknown_backend_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown backend 'nunba'.*python, numpy, numba, parallel, cuda"):
        kernels.get_backend("nunba")


def test_backends_listed():
    assert kernels.BACKENDS == ("python", "numpy", "numba", "parallel", "cuda")
    assert set(ALL_CPU) <= set(kernels.available_backends())


class TestShapes:
    def test_w_and_a_prev_disagree(self, ops):
        A_prev, W, b = layer()
        with pytest.raises(ValueError, match=r"W has shape \(4, 3\) but A_prev has 2 rows; W must be \(n\[l\], n\[l-1\]\) and A_prev \(n\[l-1\], m\)"):
            ops.linear_forward(A_prev[:2], W, b)

    def test_transposed_a_prev_hint(self, ops):
        A_prev, W, b = layer(m=7)
        with pytest.raises(ValueError, match="did you pass A_prev.T"):
            ops.linear_forward(A_prev.T, W, b)

    def test_bias_shape(self, ops):
        A_prev, W, b = layer()
        with pytest.raises(ValueError, match=r"b must be \(n\[l\], 1\) = \(4, 1\)"):
            ops.linear_forward(A_prev, W, b[:3])
        with pytest.raises(ValueError, match=r"b must be a 2-D array.*reshape"):
            ops.linear_forward(A_prev, W, b.ravel())

    def test_one_dimensional_input(self, ops):
        with pytest.raises(ValueError, match=r"Z must be a 2-D array of shape \(n\[l\], m\), got a 1-D array of shape \(3,\); reshape it: Z.reshape\(1, -1\)"):
            ops.activation_forward(np.zeros(3), "relu")

    def test_backward_shapes(self, ops):
        A_prev, W, _ = layer()
        dZ = np.zeros((4, 5))
        with pytest.raises(ValueError, match=r"dZ has shape \(3, 5\) but W has shape \(4, 3\)"):
            ops.linear_backward(dZ[:3], A_prev, W)
        with pytest.raises(ValueError, match=r"A_prev must be \(n\[l-1\], m\) = \(3, 5\)"):
            ops.linear_backward(dZ, A_prev[:, :4], W)
        with pytest.raises(ValueError, match=r"dA has shape \(4, 4\) but Z has shape \(4, 5\)"):
            ops.linear_activation_backward(dZ[:, :4], dZ, A_prev, W, "relu")
        with pytest.raises(ValueError, match=r"dA has shape \(4, 4\) but Z has shape \(4, 5\)"):
            ops.activation_backward(dZ[:, :4], dZ, "relu")

    def test_cost_shapes(self, ops):
        with pytest.raises(ValueError, match=r"AL must be \(1, m\)"):
            ops.cross_entropy(np.full((2, 3), 0.5), np.ones((2, 3)))
        with pytest.raises(ValueError, match=r"at least one example"):
            ops.cross_entropy(np.zeros((1, 0)), np.zeros((1, 0)))
        with pytest.raises(ValueError, match=r"Y has shape \(1, 2\) but AL has shape \(1, 3\)"):
            ops.cross_entropy_backward(np.full((1, 3), 0.5), np.ones((1, 2)))

    def test_dot_shapes(self, ops):
        with pytest.raises(ValueError, match="dot needs two vectors of one length"):
            ops.dot(np.ones(3), np.ones(4))
        with pytest.raises(ValueError, match="flatten it"):
            ops.dot(np.ones((3, 1)), np.ones(3))

    def test_gradient_step_shapes(self, ops):
        with pytest.raises(ValueError, match=r"param has shape \(2, 2\) but grad has shape \(2, 3\)"):
            ops.gradient_step(np.zeros((2, 2)), np.zeros((2, 3)), 0.1)


class TestDtypes:
    def test_mixed_float_dtypes(self, ops):
        A_prev, W, b = layer()
        with pytest.raises(TypeError, match="one floating dtype.*A_prev float64, W float32, b float64"):
            ops.linear_forward(A_prev, W.astype(np.float32), b)

    def test_integer_input(self, ops):
        with pytest.raises(TypeError, match=r"Z has dtype int64; expected float32 or float64. Convert it"):
            ops.activation_forward(np.zeros((2, 2), dtype=np.int64), "relu")

    def test_labels_must_match_dtype(self, ops):
        with pytest.raises(TypeError, match="Y has dtype bool"):
            ops.cross_entropy(np.full((1, 2), 0.5), np.array([[True, False]]))

    def test_float16_and_complex_refused(self, ops):
        for dt in (np.float16, np.complex128):
            with pytest.raises(TypeError, match="expected float32 or float64"):
                ops.activation_forward(np.zeros((1, 2), dtype=dt), "tanh")


class TestNames:
    def test_unknown_activation(self, ops):
        with pytest.raises(ValueError, match="unknown activation 'relu6'; valid names: sigmoid, tanh, relu, leaky_relu, linear"):
            ops.activation_forward(np.zeros((1, 1)), "relu6")

    def test_activation_not_a_string(self, ops):
        with pytest.raises(TypeError, match="activation must be a name"):
            ops.activation_backward(np.zeros((1, 1)), np.zeros((1, 1)), 2)

    def test_learning_rate(self, ops):
        p = np.zeros((1, 2))
        with pytest.raises(TypeError, match="learning_rate must be a real number"):
            ops.gradient_step(p, p.copy(), "0.1")
        with pytest.raises(ValueError, match="learning_rate must be finite"):
            ops.gradient_step(p, p.copy(), float("nan"))


class TestOut:
    def test_out_is_the_returned_array(self, ops):
        A_prev, W, b = layer()
        Z = np.empty((4, 5))
        assert ops.linear_forward(A_prev, W, b, out=Z) is Z
        np.testing.assert_allclose(Z, W @ A_prev + b, rtol=1e-13)
        A = np.empty((4, 5))
        outs = ops.linear_activation_forward(A_prev, W, b, "tanh", out=(Z, A))
        assert outs[0] is Z and outs[1] is A
        assert ops.activation_forward(Z, "relu", out=A) is A
        dA_prev, dW, db, dZ = np.empty((3, 5)), np.empty((4, 3)), np.empty((4, 1)), np.empty((4, 5))
        got = ops.linear_backward(Z, A_prev, W, out=(dA_prev, dW, db))
        assert got[0] is dA_prev and got[1] is dW and got[2] is db
        got = ops.linear_activation_backward(A, Z, A_prev, W, "tanh", out=(dA_prev, dW, db, dZ))
        assert got[0] is dA_prev and got[1] is dW and got[2] is db
        np.testing.assert_allclose(dZ, ops.activation_backward(A, Z, "tanh"), rtol=1e-14)
        assert ops.activation_backward(A, Z, "tanh", out=dZ) is dZ
        AL, Y, dAL = np.full((1, 5), 0.3), np.ones((1, 5)), np.empty((1, 5))
        assert ops.cross_entropy_backward(AL, Y, out=dAL) is dAL
        J = np.empty(())
        assert ops.cross_entropy(AL, Y, out=J) is J and float(J) == pytest.approx(-np.log(0.3))
        s = np.empty(())
        assert ops.dot(np.ones(3), np.ones(3), out=s) is s and float(s) == 3.0
        p, o = np.ones((2, 2)), np.empty((2, 2))
        assert ops.gradient_step(p, p, 0.5, out=o) is o
        np.testing.assert_array_equal(p, 1.0)  # out= leaves param alone
        np.testing.assert_array_equal(o, 0.5)

    def test_in_place_elementwise(self, ops):
        Z = np.array([[-1.0, 2.0]])
        assert ops.activation_forward(Z, "relu", out=Z) is Z
        np.testing.assert_array_equal(Z, [[0.0, 2.0]])

    def test_out_wrong_shape(self, ops):
        A_prev, W, b = layer()
        with pytest.raises(ValueError, match=r"out has shape \(5, 4\) but the result has shape \(4, 5\)"):
            ops.linear_forward(A_prev, W, b, out=np.empty((5, 4)))

    def test_out_wrong_dtype(self, ops):
        A_prev, W, b = layer()
        with pytest.raises(TypeError, match="out has dtype float32 but the result has dtype float64"):
            ops.linear_forward(A_prev, W, b, out=np.empty((4, 5), np.float32))

    def test_out_not_contiguous(self, ops):
        with pytest.raises(ValueError, match="out must be C-contiguous"):
            ops.activation_forward(np.zeros((4, 5)), "relu", out=np.empty((5, 4)).T)

    def test_out_read_only(self, ops):
        out = np.empty((4, 5))
        out.flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):
            ops.activation_forward(np.zeros((4, 5)), "relu", out=out)

    def test_out_overlapping_an_input(self, ops):
        A_prev, W, b = layer(n=3, k=3, m=3)
        with pytest.raises(ValueError, match="overlaps the input A_prev"):
            ops.linear_forward(A_prev, W, b, out=A_prev)
        flat = np.zeros(12)  # contiguous input and out, shifted by 2 cells
        with pytest.raises(ValueError, match="overlaps the input Z"):
            ops.activation_forward(flat[:10].reshape(2, 5), "relu", out=flat[2:].reshape(2, 5))

    def test_strided_input_in_outs_memory_is_copied_first(self, ops):
        # a strided input is copied before the op (checks.float_array), so an
        # out over its memory is not one the op reads: accepted on every backend
        # (cuda included, whose check once looked at the strided view itself)
        big = np.arange(40.0).reshape(4, 10) - 20
        want = np.maximum(big[:, :5], 0)
        out = big.reshape(-1)[20:40].reshape(4, 5)  # rows 2 and 3 of big: cells of the input
        ops.activation_forward(big[:, :5], "relu", out=out)
        np.testing.assert_array_equal(out, want)
        cells = np.arange(20.0).reshape(2, 10)
        param = cells.reshape(-1)[10:].reshape(2, 5)  # row 1 of cells, which grad's view reads too
        grad = cells[:, ::2]
        want = param - 0.5 * grad
        ops.gradient_step(param, grad, 0.5)
        np.testing.assert_array_equal(param, want)

    def test_outputs_overlapping_each_other(self, ops):
        A_prev, W, b = layer()
        Z = np.empty((4, 5))
        with pytest.raises(ValueError, match="overlaps"):
            ops.linear_activation_forward(A_prev, W, b, "relu", out=(Z, Z))

    def test_out_tuple_length(self, ops):
        A_prev, W, b = layer()
        with pytest.raises(TypeError, match=r"out must be a tuple \(Z, A\)"):
            ops.linear_activation_forward(A_prev, W, b, "relu", out=np.empty((4, 5)))

    def test_gradient_step_in_place_needs_a_contiguous_array(self, ops):
        p = np.zeros((4, 4))[:, ::2]
        with pytest.raises(ValueError, match="param must be C-contiguous"):
            ops.gradient_step(p, np.ones((4, 2)), 0.1)
        with pytest.raises(TypeError, match="updates param in place"):
            ops.gradient_step([[1.0, 2.0]], np.ones((1, 2)), 0.1)


class TestLayouts:
    def test_fortran_and_strided_inputs(self, ops):
        A_prev, W, b = layer()
        want = W @ A_prev + b
        got = ops.linear_forward(np.asfortranarray(A_prev), np.asfortranarray(W), b)
        np.testing.assert_allclose(got, want, rtol=1e-13)
        wide = np.zeros((3, 10))
        wide[:, ::2] = A_prev
        np.testing.assert_allclose(ops.linear_forward(wide[:, ::2], W, b), want, rtol=1e-13)
        assert np.all(wide[:, 1::2] == 0)  # the input was not touched

    def test_array_likes_and_byte_order(self, ops):
        np.testing.assert_array_equal(ops.activation_forward([[-1.0, 2.0]], "relu"), [[0.0, 2.0]])
        big_endian = np.array([[-1.0, 2.0]], dtype=">f8")
        np.testing.assert_array_equal(ops.activation_forward(big_endian, "relu"), [[0.0, 2.0]])
        assert ops.dot([1.0, 2.0], [3.0, 4.0]) == 11.0


# --------------------------------------- what NumPy answers, where the loops leave zeros out


def _relu_like(rng, shape, dead_row):
    """A relu's output, 70% zeros, one unit (row) dead: what the sparse tiles leave out."""
    x = np.maximum(rng.standard_normal(shape) - 0.6, 0)
    x[dead_row] = 0.0
    return x


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_non_finite_factor_gives_numpys_non_finite_cells(ops, bad, dtype):
    # the sparse tiles never formed 0 x NaN: a NaN weight into a dead unit vanished, Z all finite
    rng = np.random.default_rng(0)
    n = k = m = 64
    ref = kernels.get_backend("numpy")
    A_prev = _relu_like(rng, (k, m), 2).astype(dtype)
    W = rng.standard_normal((n, k)).astype(dtype)
    W[1, 2] = bad  # a diverged weight from the dead unit
    b = np.zeros((n, 1), dtype)
    dZ = _relu_like(rng, (n, m), 1).astype(dtype)
    A_bad = rng.standard_normal((k, m)).astype(dtype)
    A_bad[3, 5] = bad  # dW = dZ A_prev^T, dZ's row 1 zero
    Z = rng.standard_normal((n, m)).astype(dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        cases = [(lambda o: o.linear_forward(A_prev, W, b)),
                 (lambda o: o.linear_activation_forward(A_prev, W, b, "relu")),
                 (lambda o: o.linear_backward(dZ, A_prev, W)),
                 (lambda o: o.linear_backward(dZ, A_bad, rng.standard_normal((n, k)).astype(dtype))),
                 (lambda o: o.linear_activation_backward(dZ, Z, A_prev, W, "relu"))]
        for i, case in enumerate(cases):
            rng = np.random.default_rng(1)  # the same draws for both calls
            want = case(ref)
            rng = np.random.default_rng(1)
            got = case(ops)
            want, got = (want, got) if isinstance(want, tuple) else ((want,), (got,))
            assert not all(np.isfinite(w).all() for w in want), f"case {i}: NumPy's answer has no {bad} to keep"
            for j, (g, w) in enumerate(zip(got, want)):  # NumPy's own kernels ran: its very cells
                np.testing.assert_array_equal(g, w, err_msg=f"case {i}, output {j}")


def test_backward_needs_an_example(ops):
    # m = 0: dW and db came back NaN (0 / 0) with no error
    with pytest.raises(ValueError, match=r"needs at least one example: dZ has shape \(4, 0\)"):
        ops.linear_backward(np.zeros((4, 0)), np.zeros((3, 0)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"needs at least one example: Z has shape \(4, 0\)"):
        ops.linear_activation_backward(np.zeros((4, 0)), np.zeros((4, 0)), np.zeros((3, 0)), np.zeros((4, 3)), "relu")


def test_gradient_step_on_a_scalar_array(ops):
    # a 0-d param was said to have shape () against grad's (1,)
    p = np.array(1.0)
    assert ops.gradient_step(p, np.array(2.0), 0.5) is p and p == 0.0
    out = np.empty(())
    assert ops.gradient_step(np.array(1.0), np.array(2.0), 0.25, out=out) is out and out == 0.5


def test_a_learning_rate_infinite_in_the_params_dtype_is_refused(ops):
    # 1e39 passed the float64 test; cast to float32 it is inf, and the step made inf and NaN cells
    p = np.ones(3, np.float32)
    with pytest.raises(ValueError, match=r"learning_rate 1e\+39 is past the largest float32"):
        ops.gradient_step(p, np.ones(3, np.float32), 1e39)
    assert (p == 1).all()
    with pytest.raises(ValueError, match="learning_rate must be finite"):
        ops.gradient_step(np.ones(3), np.ones(3), 10**400)  # an int past float64: OverflowError once
    assert ops.gradient_step(np.ones(3), np.ones(3), 1e39)[0] == 1 - 1e39


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_out_arrays_the_ops_cannot_write_are_refused(ops):
    A_prev, W, b = layer()
    with pytest.raises(TypeError, match="got matrix; np.asarray"):
        ops.linear_forward(A_prev, W, b, out=np.asmatrix(np.empty((4, 5))))
    swapped = np.ones(3, dtype=">f8")
    with pytest.raises(TypeError, match=r"param has dtype >f8, not in this CPU's byte order"):
        ops.gradient_step(swapped, np.ones(3), 0.1)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_array_subclasses_are_taken_as_their_plain_arrays(ops):
    # np.require kept np.matrix (cross_entropy: "shapes not aligned") and masked arrays (a cell dropped)
    AL, Y = np.array([[0.2, 0.9]]), np.array([[0.0, 1.0]])
    want = ops.cross_entropy(AL, Y)
    assert ops.cross_entropy(np.asmatrix(AL), np.asmatrix(Y)) == want
    assert ops.cross_entropy(np.ma.masked_array(AL, mask=[[True, False]]), Y) == want
