"""Figure steps of ``hiergrammar reproduce``: one module per step, above every other layer."""
