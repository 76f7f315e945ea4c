/* export.h: the visibility macro for libbilliard's public symbols.
 * The library is built with -fvisibility=hidden; only BL_API symbols are
 * exported from the shared object. */
#ifndef BILLIARD_EXPORT_H
#define BILLIARD_EXPORT_H

#if defined(__GNUC__) && defined(BL_BUILDING_LIBRARY)
#define BL_API __attribute__((visibility("default")))
#else
#define BL_API
#endif

#endif /* BILLIARD_EXPORT_H */
