// Placeholder: the widget is being written (issue #5).
