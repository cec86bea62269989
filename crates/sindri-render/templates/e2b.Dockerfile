{% if dockerfile is defined %}{{ dockerfile }}{% else %}
# Rendered by sindri for environment {{ name }} (project {{ project }}): the base of the E2B sandbox template.
FROM {{ base_image }}
{% endif %}
