"""Topic 02 (part 1) — a scalar autograd engine: ``Value``.

A ``Value`` wraps one Python float (``.data``) and remembers how it was made: the Values it
was computed from (``._prev``), the operation (``._op``) and a closure (``._backward``) that
applies the chain rule for that one operation. ``.grad`` holds d(output)/d(this node) after
``output.backward()``.

    >>> a, b = Value(2.0), Value(-3.0)
    >>> c = a * b + a.tanh()
    >>> c.backward()
    >>> a.grad   # d c / d a = b + (1 - tanh(a)^2)
    -2.9293...

What you write:

- the forward value and the ``_backward`` closure of each primitive operation:
  ``+``, ``*``, ``** k`` (k a constant), ``exp``, ``log``, ``tanh``, ``relu``, ``sigmoid``.
  Every ``_backward`` **adds** into its children's ``.grad`` (``+=``): a node used twice
  receives a gradient from each use;
- ``topological_order``: every node the output depends on, children before parents;
- ``backward``: seed the output with 1, run each node's ``_backward`` in reverse
  topological order;
- ``zero_grad``: set ``.grad`` back to 0 on a node and every node it depends on.

Subtraction, negation, division and the reflected operators (``2 * a``, ``1 - a``, ``1 / a``)
are built from the primitives and given to you.

Calling ``backward`` twice adds the gradients again (like ``loss.backward(retain_graph=True)``
twice in PyTorch): a leaf's ``.grad`` doubles. Interior nodes (those with children) are
reset at the start of each ``backward`` so that each pass sends exactly one copy of the
gradient through them; after the call they hold the gradient of that pass. Call
``zero_grad()`` between steps when you do not want accumulation.
"""

from __future__ import annotations

import math


class Value:
    """A scalar node of the computation graph.

    data: the float value; grad: d(output)/d(this), 0.0 until a ``backward`` reaches it;
    _prev: the Values this one was computed from (empty for a leaf);
    _op: a short label of the operation (``"+"``, ``"*"``, ``"tanh"``, ...);
    _backward: a closure that adds this node's contribution to its children's ``.grad``.
    """

    def __init__(self, data, _children=(), _op: str = ""):
        self.data = float(data)
        self.grad = 0.0
        self._prev = tuple(_children)
        self._op = _op
        self._backward = lambda: None

    def __repr__(self) -> str:
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"

    # ------------------------------------------------------------------ primitives

    def __add__(self, other) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        # TODO: out = self + other, remembering (self, other) as children and "+" as the op.
        # BEGIN SOLUTION forward of a + b: a new Value with children (self, other) and op "+"
        out = Value(self.data + other.data, (self, other), "+")
        # END SOLUTION

        def _backward():
            # d(a + b)/da = 1, d(a + b)/db = 1; add (+=), never assign.
            # BEGIN SOLUTION backward of a + b: add out.grad into self.grad and other.grad
            self.grad += out.grad
            other.grad += out.grad
            # END SOLUTION

        out._backward = _backward
        return out

    def __mul__(self, other) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        # BEGIN SOLUTION forward of a * b: a new Value with children (self, other) and op "*"
        out = Value(self.data * other.data, (self, other), "*")
        # END SOLUTION

        def _backward():
            # d(a * b)/da = b, d(a * b)/db = a.
            # BEGIN SOLUTION backward of a * b: each child receives the other's data times out.grad
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
            # END SOLUTION

        out._backward = _backward
        return out

    def __pow__(self, k) -> Value:
        """self ** k for a constant int or float k (not a Value)."""
        if isinstance(k, Value):
            raise TypeError("Value ** Value is not supported: the exponent must be a constant int or float")
        if not isinstance(k, (int, float)):
            return NotImplemented
        # BEGIN SOLUTION forward of a ** k: a new Value with child (self,) and op f"**{k}"
        out = Value(self.data ** k, (self,), f"**{k}")
        # END SOLUTION

        def _backward():
            # d(a ** k)/da = k * a ** (k - 1).
            # BEGIN SOLUTION backward of a ** k
            self.grad += k * self.data ** (k - 1) * out.grad
            # END SOLUTION

        out._backward = _backward
        return out

    def exp(self) -> Value:
        # BEGIN SOLUTION forward of exp(a) (math.exp)
        out = Value(math.exp(self.data), (self,), "exp")
        # END SOLUTION

        def _backward():
            # d exp(a)/da = exp(a): the output you already computed.
            # BEGIN SOLUTION backward of exp(a)
            self.grad += out.data * out.grad
            # END SOLUTION

        out._backward = _backward
        return out

    def log(self) -> Value:
        """Natural logarithm; self.data must be > 0."""
        # BEGIN SOLUTION forward of log(a) (math.log)
        out = Value(math.log(self.data), (self,), "log")
        # END SOLUTION

        def _backward():
            # d log(a)/da = 1 / a.
            # BEGIN SOLUTION backward of log(a)
            self.grad += out.grad / self.data
            # END SOLUTION

        out._backward = _backward
        return out

    def tanh(self) -> Value:
        # BEGIN SOLUTION forward of tanh(a) (math.tanh)
        out = Value(math.tanh(self.data), (self,), "tanh")
        # END SOLUTION

        def _backward():
            # d tanh(a)/da = 1 - tanh(a)^2.
            # BEGIN SOLUTION backward of tanh(a)
            self.grad += (1.0 - out.data * out.data) * out.grad
            # END SOLUTION

        out._backward = _backward
        return out

    def relu(self) -> Value:
        """max(a, 0); its gradient at exactly 0 is taken to be 0 (as in PyTorch)."""
        # BEGIN SOLUTION forward of relu(a)
        out = Value(self.data if self.data > 0 else 0.0, (self,), "relu")
        # END SOLUTION

        def _backward():
            # BEGIN SOLUTION backward of relu(a): out.grad passes where a > 0, nothing elsewhere
            self.grad += (1.0 if self.data > 0 else 0.0) * out.grad
            # END SOLUTION

        out._backward = _backward
        return out

    def sigmoid(self) -> Value:
        """1 / (1 + exp(-a)), computed without overflow for large |a|."""
        # TODO: math.exp(-a) overflows for a < -709: use exp(-|a|) and pick the right formula.
        # BEGIN SOLUTION forward of sigmoid(a), stable for large |a|
        e = math.exp(-abs(self.data))
        s = 1.0 / (1.0 + e) if self.data >= 0 else e / (1.0 + e)
        out = Value(s, (self,), "sigmoid")
        # END SOLUTION

        def _backward():
            # d sigmoid(a)/da = s * (1 - s) with s = sigmoid(a).
            # BEGIN SOLUTION backward of sigmoid(a)
            self.grad += out.data * (1.0 - out.data) * out.grad
            # END SOLUTION

        out._backward = _backward
        return out

    # ------------------------------------------------- built from the primitives (given)

    def __neg__(self) -> Value:          # -a
        return self * -1

    def __sub__(self, other) -> Value:   # a - b
        return self + (-other)

    def __truediv__(self, other) -> Value:   # a / b
        other = other if isinstance(other, Value) else Value(other)
        return self * other ** -1

    def __radd__(self, other) -> Value:  # 2 + a
        return self + other

    def __rmul__(self, other) -> Value:  # 2 * a
        return self * other

    def __rsub__(self, other) -> Value:  # 2 - a
        return other + (-self)

    def __rtruediv__(self, other) -> Value:  # 2 / a
        return other * self ** -1

    # ------------------------------------------------------------------ the engine

    def topological_order(self) -> list[Value]:
        """Every node this Value depends on, itself included, each exactly once, ordered so
        that a node comes after all of its children (``self`` is last).

        Walk ``_prev`` depth-first and append a node once all its children are appended.
        Keep a set of visited nodes: shared subgraphs must appear once. Deep graphs (a chain
        of thousands of additions) must work, so prefer an explicit stack to recursion.
        """
        # BEGIN SOLUTION topological sort: depth-first over _prev, a node after all its children (use a stack, not recursion)
        order: list[Value] = []
        visited: set[int] = set()
        stack: list[tuple[Value, bool]] = [(self, False)]
        while stack:
            node, children_done = stack.pop()
            if children_done:
                order.append(node)
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append((node, True))
            for child in node._prev:
                if id(child) not in visited:
                    stack.append((child, False))
        return order
        # END SOLUTION

    def backward(self) -> None:
        """Compute d(self)/d(node) for every node ``self`` depends on, by reverse mode.

        Leaves (nodes without children) accumulate: their ``.grad`` is increased, so calling
        ``backward`` twice doubles it. Interior nodes are reset to 0 first, so each pass sends
        exactly one copy of the gradient through them.
        """
        # TODO: order = self.topological_order(); reset interior nodes; self.grad += 1;
        #       then call _backward() on each node, output first.
        # BEGIN SOLUTION reset the interior nodes, seed self.grad with 1, run each _backward in reverse topological order
        order = self.topological_order()
        for node in order:
            if node._prev:
                node.grad = 0.0
        self.grad += 1.0
        for node in reversed(order):
            node._backward()
        # END SOLUTION

    def zero_grad(self) -> None:
        """Set ``.grad`` to 0.0 on this node and on every node it depends on."""
        # BEGIN SOLUTION zero the gradient of this node and of every node in its graph
        for node in self.topological_order():
            node.grad = 0.0
        # END SOLUTION
