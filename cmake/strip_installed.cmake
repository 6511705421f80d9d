# Run by `cmake --install` after the files are copied (see CMakeLists.txt): the installed artefacts
# carry no debug info. By default the shared library's and the CLI's debug info is kept in
# `.debug/NAME.debug` beside each, linked by a .gnu_debuglink section (gdb looks there), and the
# static library loses only its debug sections; `cmake --install --strip` keeps no debug info at all.
# In: OCICAS_OBJCOPY, OCICAS_STRIP, OCICAS_INSTALLED_BINARIES and OCICAS_INSTALLED_ARCHIVE (paths
# relative to the prefix).

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result ERROR_VARIABLE error)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "${ARGN}: ${error}")
  endif()
endfunction()

set(prefix "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}")
foreach(relative IN LISTS OCICAS_INSTALLED_BINARIES)
  set(binary "${prefix}/${relative}")
  get_filename_component(dir "${binary}" DIRECTORY)
  get_filename_component(name "${binary}" NAME)
  set(debug_file "${dir}/.debug/${name}.debug")
  if(CMAKE_INSTALL_DO_STRIP)
    # --strip-unneeded keeps the dynamic symbols a shared library exports.
    run("${OCICAS_STRIP}" --strip-unneeded "${binary}")
    file(REMOVE "${debug_file}")
  else()
    file(MAKE_DIRECTORY "${dir}/.debug")
    run("${OCICAS_OBJCOPY}" --only-keep-debug "${binary}" "${debug_file}")
    run("${OCICAS_OBJCOPY}" --strip-debug "--add-gnu-debuglink=${debug_file}" "${binary}")
    message(STATUS "Debug info: ${debug_file}")
  endif()
endforeach()
run("${OCICAS_STRIP}" --strip-debug "${prefix}/${OCICAS_INSTALLED_ARCHIVE}")
