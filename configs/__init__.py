"""The project's configs, installed as the package `mask_rcnn_ext.configs` (see pyproject.toml).

Only a marker: it lets `importlib.resources` find the YAML files both in a source checkout
(editable install) and in an installed wheel. Use `mask_rcnn_ext.get_config_file`.
"""
