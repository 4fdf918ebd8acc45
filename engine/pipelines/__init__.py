"""The pipelines shipped with vetrina, one YAML file each; use them by name
(``vetrina run catalog-cleanup photo.jpg``) or copy one as a start for your own."""
