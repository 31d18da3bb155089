"""Saving, loading, pickling and copying a network (a mixin of NeuralNetwork).

``save`` writes the architecture and the parameters to an .npz file,
atomically; ``load`` rebuilds the network on any backend. Pickle (what a
process pool sends to and from its workers) and ``copy.deepcopy`` carry the
architecture, the parameters (as NumPy arrays), the history and the backend's
name; the receiving process binds the backend anew (compiled code, device
arrays and locks do not travel). The optimizer's state and the kept fit
buffers are not saved, sent or copied: a loaded or copied network's next fit
starts its optimizer afresh.
"""

import contextlib
import os
import secrets
import zipfile

import numpy as np

import kernels

from . import _guard

FILE_FORMAT = "jitloops-model-1"


def check_save_path(path, replaced=True):
    """``path`` (as a str) where save can write a file, or an OSError that
    says why not: empty, a folder, something that is not a regular file, a
    folder that does not exist, or one not writable (``jitloops train
    --save`` asks before it trains; ``replaced=False``: a file written in
    place by open(), as --json is, where a device or a pipe is fine). An
    existing file is replaced, as np.save and torch.save replace one."""
    path = os.fspath(path)
    if not path:
        raise FileNotFoundError("save(''): the path is empty; give a file name, e.g. 'net.npz'")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(f"save({path!r}): that is a folder; give a file name, e.g. "
                                f"{os.path.join(path, 'net.npz')!r}")
    # save writes a new file and renames it over the path: a device (/dev/null), a pipe, a socket
    # would be replaced (what open() writes into, ``replaced=False``, may be one)
    if replaced and os.path.exists(path) and not os.path.isfile(path):
        raise FileExistsError(f"save({path!r}): that exists and is not a regular file (a device, a pipe or "
                              f"a socket), which save would replace with a file; give another file name")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save({path!r}): the folder {folder!r} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"save({path!r}): the folder {folder!r} is not writable")
    return path


def _temporary_file(folder):
    """(fd, path) of a new file in ``folder`` for save to write and rename:
    created with mode 0666 less the umask, as open() creates a file
    (tempfile.mkstemp's are the owner's alone, 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".jitloops-{secrets.token_hex(8)}.npz.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # another save's name: draw again
            continue
    raise FileExistsError(f"save: no free temporary file name in {folder!r}")


class Persistence:
    """save/load, pickle and deepcopy (see the module docstring)."""

    # ------------------------------------------------------------- save / load
    def _architecture(self):
        # init, init_scale (NaN: None) and seed (-1: None) say how the first parameters were made
        return dict(kind=np.array(type(self).__name__), layer_dims=np.array(self.layer_dims, dtype=np.int64),
                    activations=np.array(self.activations), dtype=np.array(self.dtype.name),
                    format=np.array(FILE_FORMAT), init=np.array(self.init),
                    init_scale=np.array(np.nan if self.init_scale is None else self.init_scale),
                    seed=np.array(-1 if self.seed is None else self.seed, dtype=np.int64))

    @_guard.shared
    def save(self, path):
        """Write the parameters and the architecture (layer sizes, activations,
        dtype; and init, init_scale and seed, what the first parameters were
        made with) to the .npz file ``path`` (written as named, no suffix added).
        Atomic: written to a temporary file in the same folder, then renamed
        over ``path``, so a crash never leaves a half-written file there."""
        path = check_save_path(path)
        folder = os.path.dirname(os.path.abspath(path))
        arrays = dict(self._architecture())
        params = self.parameters
        arrays.update({f"param_{k}": v for k, v in params.items()})
        fd, tmp = _temporary_file(folder)
        try:
            with os.fdopen(fd, "wb") as f:
                with contextlib.suppress(OSError):  # the file it replaces keeps its permissions
                    os.chmod(tmp, os.stat(path).st_mode & 0o7777)
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path

    @classmethod
    def load(cls, path, backend="numpy"):
        """A network from a file written by ``save``, on ``backend``.
        A missing, corrupt or mismatched file raises FileNotFoundError or ValueError."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no saved network at {path!r}")
        try:
            loaded = np.load(path, allow_pickle=False)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{path!r} is not a readable jitloops network file (corrupt or not an .npz "
                             f"written by save): {exc}") from None
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # an .npy file: one array
            raise ValueError(f"{path!r} holds one NumPy array (an .npy file), not a jitloops network (an "
                             f".npz written by save)")
        try:
            with loaded as f:
                data = {k: f[k] for k in f.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{path!r} is not a readable jitloops network file (corrupt or not an .npz "
                             f"written by save): {exc}") from None
        if str(data.get("format", "")) != FILE_FORMAT:
            raise ValueError(f"{path!r} is not a jitloops network file: no format tag {FILE_FORMAT!r} "
                             f"(was it written by NeuralNetwork.save?)")
        try:
            kind = str(data["kind"])
            dims, acts = data["layer_dims"], data["activations"]
            dtype = str(data["dtype"])
        except KeyError as exc:
            raise ValueError(f"{path!r} is missing the architecture entry {exc.args[0]!r}") from None
        if dims.ndim != 1 or dims.dtype.kind not in "iu" or acts.ndim != 1 or not 2 <= dims.size == acts.size + 1:
            raise ValueError(f"{path!r} has a corrupt architecture: layer_dims must be a list of two or more "
                             f"integers and activations a list of one name a layer, got {dims!r} and {acts!r}")
        dims, acts = [int(n) for n in dims], [str(a) for a in acts]
        from .logistic import LogisticRegression
        from .network import NeuralNetwork
        target = {c.__name__: c for c in (NeuralNetwork, LogisticRegression)}.get(kind)
        if target is None or not issubclass(target, cls):
            raise ValueError(f"{path!r} holds a {kind}, not a {cls.__name__}")
        kernels.get_backend(backend)  # the caller's backend= first: its errors are not the file's
        try:
            net = target._from_architecture(dims, acts, backend, dtype)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path!r} has a corrupt architecture: {exc}") from None
        if "init" in data:  # files saved before stop 48 have no record of it (their init reads "zeros")
            try:
                seed = data["seed"]
                if seed.shape != () or seed.dtype.kind not in "iu":
                    raise ValueError(f"its seed must be one integer, got {seed!r}")
                scale, seed = float(data["init_scale"]), int(seed)
                net._made_as(str(data["init"]), None if np.isnan(scale) else scale, None if seed == -1 else seed)
            except (KeyError, ValueError, TypeError, OverflowError) as exc:
                raise ValueError(f"{path!r} has a corrupt record of its initialization: {exc}") from None
        params = {k[len("param_"):]: v for k, v in data.items() if k.startswith("param_")}
        try:
            net.set_parameters(params)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path!r} does not match its own architecture {dims}: {exc}") from None
        return net

    @classmethod
    def _from_architecture(cls, dims, activations, backend, dtype):
        """activations: the hidden layers' and, last, the output's ("sigmoid" or "softmax")."""
        return cls(dims, activations=activations[:-1], backend=backend, init="zeros", dtype=dtype,
                   output=activations[-1])

    def _clone(self):
        """A network of the same architecture and backend with the same parameters."""
        net = self._from_architecture(list(self.layer_dims), list(self.activations), self.backend, self.dtype.name)
        net._made_as(self.init, self.init_scale, self.seed)
        net.set_parameters(self.parameters)
        return net

    # ----------------------------------------------- pickle, copy.deepcopy
    _NOT_PICKLED = ("_guard", "_ops", "_program", "_fit_buffers", "_chunk_hint", "_optimizer_state", "_W", "_b",
                    "_parameter_lists_kept", "_history_buffers")

    @_guard.shared
    def __getstate__(self):
        state = {k: v for k, v in self.__dict__.items() if k not in self._NOT_PICKLED}
        state["W_host"] = [np.array(self._ops.to_host(w), copy=True) for w in self._W]
        state["b_host"] = [np.array(self._ops.to_host(v), copy=True) for v in self._b]
        return state

    def __setstate__(self, state):
        state = dict(state)
        W, b = state.pop("W_host"), state.pop("b_host")
        from .network import FIXED  # the read-only attributes, held as _<name>
        for name in FIXED:
            if name in state:  # pickled before they were read-only: under their own names
                state["_" + name] = state.pop(name)
        self.__dict__.update(state)
        self._guard = _guard.Guard()
        self._set_backend(self._backend)
        self._W = [self._ops.asarray(w) for w in W]
        self._b = [self._ops.asarray(v) for v in b]

