"""Components chosen by name or given as objects, as the model constructors take them."""


def resolve(argument, value, registry, base, default):
    """A component from a name, an instance of `base`, or `None`.

    Args:
        argument: str. The constructor argument, as the error names it.
        value: `None`, a key of `registry` or an instance of `base`.
        registry: dict from names to classes of `base` (made without arguments).
        base: the class every component derives from.
        default: str. The name `None` stands for.

    Returns:
        An instance of `base`: `value` itself, or a new one made from its name.

    Raises:
        ValueError: for anything else, naming the accepted values.
    """
    if value is None:
        return registry[default]()
    if isinstance(value, base):
        return value
    if isinstance(value, str) and value in registry:
        return registry[value]()
    raise ValueError(
        f"Expected {argument} to be one of {tuple(registry)} or a "
        f"{base.__module__.rsplit('.', 1)[0]}.{base.__name__}. Received: {argument}={value!r}"
    )
