"""One dimension of the search space (`search.space` in an experiment file): a float or int range, or a
choice, optionally sampled only `when` other keys have given values."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from lightning_modules.config import StrictModel


class ParamSpec(StrictModel):
    """One dimension of the search space: exactly one of `float`, `int`, `choice`.

    `when` makes it conditional: `{optim.name: sgd}` samples it only for trials where optim.name is sgd.
    """

    float_range: tuple[float, float] | None = Field(default=None, alias="float")
    int_range: tuple[int, int] | None = Field(default=None, alias="int")
    choice: list[Any] | None = None
    log: bool = False
    step: Annotated[float, Field(gt=0)] | None = None
    when: dict[str, Any] | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> ParamSpec:
        kinds = [k for k in ("float", "int", "choice") if self.values_of(k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"give exactly one of float, int or choice, but got {kinds or 'none'}.")
        if self.choice is not None:
            if not self.choice:
                raise ValueError("choice needs at least one value.")
            if self.log or self.step is not None:
                raise ValueError("log and step apply to float and int ranges, not to choice.")
            return self
        low, high = self.values_of(kinds[0])
        if low > high:
            raise ValueError(f"the range's low must not exceed its high, but got [{low}, {high}].")
        if self.log and low <= 0:
            raise ValueError(f"a log range needs low > 0, but got low={low}.")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined.")
        return self

    def values_of(self, kind: str) -> tuple[float, float] | tuple[int, int] | list[Any] | None:
        return {"float": self.float_range, "int": self.int_range, "choice": self.choice}[kind]

    @property
    def kind(self) -> Literal["float", "int", "choice"]:
        if self.float_range is not None:
            return "float"
        return "int" if self.int_range is not None else "choice"

    def candidates(self) -> list[Any]:
        """Values worth checking before training: every choice, or a range's ends."""
        if self.choice is not None:
            return list(self.choice)
        low, high = self.float_range or self.int_range  # type: ignore[misc]
        return [low, high] if low != high else [low]

    def describe(self) -> str:
        if self.choice is not None:
            text = "choice " + ", ".join(map(str, self.choice))
        else:
            low, high = self.float_range or self.int_range  # type: ignore[misc]
            text = f"{self.kind} [{low}, {high}]" + (" log" if self.log else "")
            text += f" step {self.step}" if self.step is not None else ""
        if self.when:
            text += " when " + ", ".join(f"{k}={v}" for k, v in self.when.items())
        return text
