"""A small 2-D vector class (a fixture for the end-to-end completion tests)."""

import math


class Vector:
    def __init__(self, x: float, y: float) -> None:
        self.x = x
        self.y = y

    def length(self) -> float:
        return math.sqrt(self.x**2 + self.y**2)

    def scale(self, factor: float) -> "Vector":
        return Vector(self.x * factor, self.y * factor)

    def add(self, other: "Vector") -> "Vector":
        return Vector(self.x + other.x, self.y + other.y)

    def dot(self, other: "Vector") -> float:
        return self.x * other.x + self.y * other.y
