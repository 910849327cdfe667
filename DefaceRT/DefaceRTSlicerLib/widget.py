"""The parameter-node life cycle shared by the three module widgets.

This is the part of Slicer's scripted-module template that every widget
repeats: load the ``.ui``, keep one parameter node connected to the GUI
(``connectGui``), follow scene close and module enter/exit, and refresh the
buttons when a parameter changes. A module widget sets ``UI_FILE`` and implements
:meth:`createLogic`, :meth:`connectSignals` and :meth:`updateButtonStates`; :meth:`onParameterNodeSet` and
:meth:`setParameterDefaults` are optional hooks.
"""

import slicer
import vtk
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

from . import guiconnection


class ParameterNodeWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    UI_FILE = ""  # relative to the module's Resources folder, e.g. "UI/DefaceRT.ui"

    def __init__(self, parent=None) -> None:
        # everything setup() uses first: without a parent, ScriptedLoadableModuleWidget calls setup() at once
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTags = []
        ScriptedLoadableModuleWidget.__init__(self, parent)

    # ------------------------------------------------------------ hooks
    def createLogic(self):
        """The module's logic object."""
        raise NotImplementedError

    def connectSignals(self) -> None:
        """Connect the widgets' signals (``self.ui`` exists)."""

    def updateButtonStates(self) -> None:
        """Enable or disable actions from the parameter node's values."""

    def onParameterNodeSet(self) -> None:
        """Extra work after a parameter node was connected to the GUI."""

    def setParameterDefaults(self) -> None:
        """Fill empty parameters from the scene (called on enter)."""

    def onParameterModified(self) -> None:
        """A parameter changed (the GUI's own connectors have already run)."""

    # -------------------------------------------------------- life cycle
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath(self.UI_FILE))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = self.createLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.connectSignals()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            guiconnection.disconnectGui(self._parameterNode, self._parameterNodeGuiTags)
            self._parameterNodeGuiTags = []
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterModified)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        self.setParameterDefaults()

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            guiconnection.disconnectGui(self._parameterNode, self._parameterNodeGuiTags)
            self._parameterNodeGuiTags = []
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTags = guiconnection.connectGui(self._parameterNode, self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterModified)
            self.onParameterNodeSet()
            self.updateButtonStates()

    def _onParameterModified(self, caller=None, event=None) -> None:
        self.onParameterModified()
        self.updateButtonStates()
