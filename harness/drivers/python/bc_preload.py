"""The preload unit `marker` of the billiard-conform driver protocol
(INTERPRETING.md §6, context.set_forkserver_preload): importing it is the
mark; target `preload_marked` looks for it in sys.modules."""
