"""kernels.loops.views: flat views, borrowed views and the lists of them the
training loops take their arrays from (compiled and interpreted)."""

import numba
import numpy as np
import pytest

from kernels.loops.views import BorrowedListType, borrowed, borrowed_list, borrowed_lists, flat


@numba.njit
def _write_through_borrowed(x, value):
    v = borrowed(x)
    row = v[1]
    row[2] = value
    return v[1, 2] + x[1, 2]


@numba.njit
def _write_through_borrowed_lists(items, nested):
    mine, theirs = borrowed_list(items), borrowed_lists(nested)
    for i in range(len(mine)):
        mine[i][0, 0] = i + 1.0
        theirs[0][i][0, 1] = 10.0 * (i + 1)
    return len(mine) + len(theirs[0])


def test_a_borrowed_view_is_the_same_memory():
    """Borrowed views and lists of them (kernels.loops.views) write the
    caller's arrays; interpreted, they are the arrays and lists themselves."""
    x = np.zeros((3, 4))
    assert _write_through_borrowed(x, 2.5) == 5.0 and x[1, 2] == 2.5 and x.sum() == 2.5
    assert borrowed(x) is x
    arrays = [np.zeros((2, 2)) for _ in range(3)]
    items = numba.typed.List(arrays)
    assert _write_through_borrowed_lists(items, numba.typed.List([items])) == 6
    assert [a[0, 0] for a in arrays] == [1.0, 2.0, 3.0] and [a[0, 1] for a in arrays] == [10.0, 20.0, 30.0]
    mine = borrowed_list(arrays)  # a list of its own: setting an item leaves the caller's
    assert mine == arrays and mine is not arrays and all(x is y for x, y in zip(mine, arrays))
    assert borrowed_lists([arrays])[0] is arrays


@numba.njit
def _items_of(items):
    """What a borrowed list gives: each item's shape, strides, address and
    sum, its length, and negative indices."""
    b = borrowed_list(items)
    out = []
    for i in range(len(b)):
        x = b[i]
        out.append((x.shape[0], x.shape[1], x.strides[0], x.strides[1], x.ctypes.data, x.sum()))
    last = b[-1]
    out.append((len(b), last.shape[0], b[-len(b)].shape[0], 0, 0, 0.0))
    return out


@numba.njit
def _borrowed_item(items, i):
    return borrowed_list(items)[i].shape[0]


def test_a_borrowed_list_gives_the_arrays_themselves():
    """Items of a borrowed list are views of the very arrays (same address,
    shape, C strides, values), of any shape; negative indices count from the
    end, others out of range raise IndexError, as a list's do."""
    rng = np.random.default_rng(0)
    arrays = [rng.random((n, k)) for n, k in ((3, 4), (1, 7), (5, 1), (2, 2))]
    got = _items_of(numba.typed.List(arrays))
    for a, (n, k, s0, s1, address, total) in zip(arrays, got):
        assert (n, k, s0, s1, address) == (a.shape[0], a.shape[1], a.strides[0], a.strides[1], a.ctypes.data)
        assert total == pytest.approx(a.sum(), rel=1e-14)
    assert got[-1][:3] == (4, 2, 3)
    items = numba.typed.List(arrays)
    assert _borrowed_item(items, 3) == 2 and _borrowed_item(items, -4) == 3
    for i in (4, -5):
        with pytest.raises(IndexError, match="out of range"):
            _borrowed_item(items, i)


def test_a_borrowed_list_of_1d_and_float32_arrays():
    arrays = [np.arange(5, dtype=np.float32), np.arange(3, dtype=np.float32) + 10]
    items = numba.typed.List(arrays)

    @numba.njit
    def total(items):
        b = borrowed_list(items)
        s = np.float32(0.0)
        for i in range(len(b)):
            for j in range(b[i].shape[0]):
                s += b[i][j]
        return s
    assert total(items) == np.float32(10 + 33)


def test_a_borrowed_list_is_of_its_own_type():
    """Compiled, borrowed_list of C-contiguous arrays is a BorrowedListType
    (a table of addresses, no typed list)."""
    items = numba.typed.List([np.zeros((2, 2))])

    @numba.njit
    def kind(items):
        b = borrowed_list(items)
        return len(b)
    assert kind(items) == 1
    typemap = kind.overloads[kind.signatures[0]].fndesc.typemap
    assert typemap["b"] == BorrowedListType(numba.types.float64[:, ::1])
    with pytest.raises(numba.core.errors.TypingError, match="typed list of arrays"):
        numba.njit(lambda x: borrowed_list(x))(np.zeros(3))
    assert BorrowedListType(numba.types.float64[:, ::1]).array_type == numba.types.float64[:, ::1]


@numba.njit
def _set_and_read(items, other, i):
    """Item i of a borrowed list set to a block of ``other`` (a view, as
    fit_epochs sets A[0] to its batch): what the list then gives at i and
    at -1, and at i of a second borrowed list of the same items."""
    b = borrowed_list(items)
    b[i] = other[1:3]
    again = borrowed_list(items)
    return b[i].shape[0], b[i][0, 0], b[-1][0, 0], again[i][0, 0], b[i].ctypes.data


def test_setting_an_item_of_a_borrowed_list_changes_that_list_only():
    """lst[i] = x makes the table's item i a view of x (its address and
    shape); the typed list and other borrowed lists of it keep their
    arrays. Out of range: IndexError; another dtype, number of dimensions
    or a strided array: a typing error that names what it takes."""
    arrays = [np.full((2, 2), float(i)) for i in range(3)]
    items = numba.typed.List(arrays)
    other = np.arange(8.0).reshape(4, 2) + 100.0
    assert _set_and_read(items, other, 2) == (2, 102.0, 102.0, 2.0, other[1:3].ctypes.data)
    assert _set_and_read(items, other, -3)[:4] == (2, 102.0, 2.0, 0.0)
    assert [a[0, 0] for a in items] == [0.0, 1.0, 2.0] and all(x is y for x, y in zip(items, arrays))
    for i in (3, -4):
        with pytest.raises(IndexError, match="out of range"):
            _set_and_read(items, other, i)

    @numba.njit
    def set_item(items, x):
        b = borrowed_list(items)
        b[0] = x
    for bad in (np.zeros((2, 2), dtype=np.float32), np.zeros(4), np.zeros((4, 4))[:, ::2]):
        with pytest.raises(numba.core.errors.TypingError, match="C-contiguous arrays of 2 dimensions of float64"):
            set_item(items, bad)


def test_a_borrowed_list_outlives_no_argument_of_its_own():
    """The table a borrowed list reads is its own memory: made and dropped
    many times in one call, it leaks nothing and reads the right arrays."""
    arrays = [np.full((2, 3), float(i)) for i in range(5)]
    items = numba.typed.List(arrays)

    @numba.njit
    def many(items, times):
        s = 0.0
        for t in range(times):
            b = borrowed_list(items)
            s += b[t % len(b)][1, 2]
        return s
    assert many(items, 1000) == sum(float(t % 5) for t in range(1000))


def test_flat_is_the_one_dimensional_view():
    x = np.arange(12.0).reshape(3, 4)

    @numba.njit
    def first_and_last(x):
        f = flat(x)
        f[0] = -1.0
        return f.shape[0], f[11]
    assert first_and_last(x) == (12, 11.0) and x[0, 0] == -1.0
    assert flat(x).shape == (12,)


def test_a_borrowed_list_of_strided_arrays_is_a_typed_list_of_views():
    """Arrays that are not C-contiguous: a typed list of borrowed views
    (the table's views assume C strides), the same cells."""
    base = np.arange(24.0).reshape(4, 6)
    items = numba.typed.List([base[:, ::2], base[1:, 1::2]])

    @numba.njit
    def corner_sums(items):
        b = borrowed_list(items)
        return b[0][1, 1] + b[1][0, 0], len(b)
    assert corner_sums(items) == (base[1, 2] + base[1, 1], 2)
